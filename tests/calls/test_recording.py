"""Record and replay: real pytest sessions record the simulator's answers over loopback
HTTP (through ``llm``, httpx2 and the official SDKs), then replay them with every socket
connection refused: same outcomes, same usage, no network, no key."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ..conftest import schema

pytest.importorskip("openai")
pytest.importorskip("anthropic")

KEY = "sk-rec-0123456789abcdefDISTINCTIVE"

CONFIG = """
[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"

[tool.llm-matrix.simulator]
default_reply = "ok"
rules = [{ match = "(?i)capital", reply = "Paris" }]

[tool.llm-matrix.models.sim-a]
provider = "simulator"
input_price = 1.0
output_price = 2.0

[tool.llm-matrix.models.sim-claude]
provider = "simulator"
api = "anthropic"

# a keyed model: the simulator behind an OpenAI-compatible URL (set by the test)
[tool.llm-matrix.models.keyed]
provider = "openai-compatible"
base_url = "BASE_URL"
model = "sim-keyed"
api_key_env = "REC_TEST_KEY"
"""

SUITE = """
import pytest

def test_plain(llm):
    assert llm.complete("capital of France?") == "Paris"

@pytest.mark.parametrize("q", ["hello", "capital"])
def test_param(llm, q):
    assert llm.complete(q)

def test_stream(llm):
    assert "".join(llm.stream("capital?")) == "Paris"

def test_two_identical(llm):
    assert [llm.complete("hello"), llm.complete("hello")] == ["ok", "ok"]
"""

SDK_SUITE = """
import pytest

def test_openai(openai_client, llm_model):
    if llm_model.api != "openai":
        pytest.skip("an OpenAI test")
    messages = [{"role": "user", "content": "capital"}]
    r = openai_client.chat.completions.create(model=llm_model.model, messages=messages)
    assert r.choices[0].message.content == "Paris"
    assert r.usage.total_tokens > 0
    s = openai_client.chat.completions.create(
        model=llm_model.model, messages=messages, stream=True,
        stream_options={"include_usage": True},
    )
    assert "".join(c.choices[0].delta.content or "" for c in s if c.choices) == "Paris"

def test_anthropic(anthropic_client, llm_model):
    if llm_model.api != "anthropic":
        pytest.skip("an Anthropic test")
    messages = [{"role": "user", "content": "capital"}]
    with anthropic_client.messages.stream(
        model=llm_model.model, max_tokens=64, messages=messages
    ) as stream:
        assert stream.get_final_text() == "Paris"
    m = anthropic_client.messages.create(model=llm_model.model, max_tokens=64, messages=messages)
    assert m.content[0].text == "Paris"
"""

#: An inner conftest: every socket connection fails (the run must not touch the network).
NO_NETWORK = """
import socket

import pytest

@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refused(*args, **kwargs):
        raise OSError("network used during a replay")
    monkeypatch.setattr(socket.socket, "connect", refused)
    monkeypatch.setattr(socket, "create_connection", refused)
"""


@pytest.fixture
def project(pytester, simulator, monkeypatch):
    """A project whose three models answer from simulators; returns a function that
    writes the test modules."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    monkeypatch.setenv("REC_TEST_KEY", KEY)
    served = simulator(
        {
            "default_reply": "ok",
            "rules": [{"match": "(?i)capital", "reply": "Paris"}],
            "models": {"sim-keyed": {"api_key": KEY}},  # it answers only with the key
        }
    )
    pytester.makefile(".toml", pyproject=CONFIG.replace("BASE_URL", served.url + "/v1"))

    def write(**modules: str) -> None:
        pytester.makepyfile(**{name: textwrap.dedent(text) for name, text in modules.items()})

    return write


def cassettes(pytester) -> dict[str, dict]:
    """Every recording under llm_cassettes/, by path relative to the project."""
    root = pytester.path / "llm_cassettes"
    return {
        str(p.relative_to(pytester.path)): json.loads(p.read_text())
        for p in sorted(root.rglob("*.json"))
    }


def offline(pytester) -> None:
    """Replays that follow run with the key unset and every connection refused."""
    pytester.makeconftest(NO_NETWORK)


def test_a_recorded_run_replays_offline_with_the_same_outcomes(pytester, project, monkeypatch):
    project(test_suite=SUITE, test_sdks=SDK_SUITE)
    args = ["-p", "no:randomly", "--models=all"]
    live = pytester.runpytest(*args, "--llm-record=new")
    live.assert_outcomes(passed=18, skipped=3)
    files = cassettes(pytester)
    assert "llm_cassettes/sim-a/test_suite/test_param[capital].json" in files
    assert "llm_cassettes/keyed/test_suite/test_plain.json" in files
    plain = files["llm_cassettes/sim-a/test_suite/test_plain.json"]
    assert plain["version"] == 1
    assert plain["model"] == "sim-a"
    assert plain["test"] == "test_suite.py::test_plain[sim-a]"
    (entry,) = plain["interactions"]
    assert entry["request"]["path"] == "/v1/chat/completions"
    assert entry["response"]["json"]["choices"][0]["message"]["content"] == "Paris"
    stream = files["llm_cassettes/sim-a/test_suite/test_stream.json"]["interactions"][0]
    assert stream["ttft"] >= 0
    assert stream["response"]["events"][-1] == {"data": "[DONE]"}
    # the key: in no file, whether in a header, a body or an answer
    for text in (p.read_text() for p in (pytester.path / "llm_cassettes").rglob("*.json")):
        assert KEY not in text
        assert "authorization" not in text.lower()

    offline(pytester)
    monkeypatch.delenv("REC_TEST_KEY")
    for workers in ([], ["-n", "2"]):
        replay = pytester.runpytest(*args, "--llm-record=replay", *workers)
        replay.assert_outcomes(passed=18, skipped=3)  # the keyed model is not skipped
        assert "llm-matrix: keyed skipped" not in replay.stdout.str()
        replay.stdout.fnmatch_lines(["*--llm-record=replay: 24 requests replayed, none sent*"])
    assert cassettes(pytester) == files  # a replay writes nothing


def test_usage_latency_and_cost_come_out_of_a_replay_as_they_came_live(pytester, project):
    project(test_suite=SUITE)
    args = ["-p", "no:randomly", "--models=sim-a", "--llm-report=report.json"]
    pytester.runpytest(*args, "--llm-record=new").assert_outcomes(passed=5)
    live = json.loads((pytester.path / "report.json").read_text())["models"]["sim-a"]
    offline(pytester)
    pytester.runpytest(*args, "--llm-record=replay").assert_outcomes(passed=5)
    report = json.loads((pytester.path / "report.json").read_text())
    import jsonschema

    jsonschema.validate(report, schema())
    replayed = report["models"]["sim-a"]
    assert live["requests"] == live["recorded"] == replayed["replayed"] == 6
    assert replayed["requests"] == replayed["input_tokens"] == replayed["cost_usd"] == 0
    assert replayed["replayed_input_tokens"] == live["input_tokens"] > 0
    assert replayed["replayed_output_tokens"] == live["output_tokens"] > 0
    assert replayed["replayed_cost_usd"] == pytest.approx(live["cost_usd"])
    assert live["cost_usd"] > 0
    assert replayed["ttft_p50"] is not None
    assert replayed["latency_p50"] is not None
    assert report["recording"] == {"mode": "replay", "unused": [], "deleted": []}


def test_a_changed_prompt_misses_and_says_where_it_looked_and_how_to_record(pytester, project):
    project(test_suite=SUITE)
    pytester.runpytest("--models=sim-a", "--llm-record=new").assert_outcomes(passed=5)
    project(test_suite=SUITE.replace('"capital of France?"', '"capital of Spain?"'))
    offline(pytester)
    result = pytester.runpytest("--models=sim-a", "--llm-record=replay")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "no recording of this request to sim-a (POST /v1/chat/completions): none in "
            "llm_cassettes/sim-a/test_suite/test_plain.json matches (the body differs at "
            "body.messages[[]0[]].content); run pytest --llm-record=new --models=sim-a "
            "'test_suite.py::test_plain[[]sim-a[]]' to record it"
        ]
    )
    # a test never recorded: the file does not exist
    project(test_new="def test_fresh(llm):\n    assert llm.complete('hi')\n")
    fresh = pytester.runpytest("--models=sim-a", "--llm-record=replay", "test_new.py")
    fresh.stdout.fnmatch_lines(["*llm_cassettes/sim-a/test_new/test_fresh.json does not exist*"])


def test_new_records_only_what_is_missing_and_all_rewrites(pytester, project):
    project(test_suite=SUITE)
    pytester.runpytest("--models=sim-a", "--llm-record=new").assert_outcomes(passed=5)
    path = "llm_cassettes/sim-a/test_suite/test_plain.json"
    first = cassettes(pytester)
    # a test that makes one more request: new keeps the first and adds the second
    project(
        test_suite=SUITE.replace(
            'assert llm.complete("capital of France?") == "Paris"',
            'assert llm.complete("capital of France?") == "Paris"\n'
            '    assert llm.complete("and of Italy?") == "ok"',
        )
    )
    result = pytester.runpytest("--models=sim-a", "--llm-record=new")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*--llm-record=new: 6 requests replayed, 1 sent and recorded*"])
    after = cassettes(pytester)
    assert after[path]["interactions"][0] == first[path]["interactions"][0]
    assert after[path]["interactions"][1]["request"]["json"]["messages"][0]["content"] == (
        "and of Italy?"
    )
    assert {k: v for k, v in after.items() if k != path} == {
        k: v for k, v in first.items() if k != path
    }
    # all: everything sent again, the files of the tests that ran rewritten
    project(test_suite=SUITE)
    pytester.runpytest("--models=sim-a", "--llm-record=all", "-k", "plain").assert_outcomes(
        passed=1
    )
    rewritten = cassettes(pytester)
    assert len(rewritten[path]["interactions"]) == 1
    assert (
        rewritten[path]["interactions"][0]["request"] == first[path]["interactions"][0]["request"]
    )
    assert (
        rewritten[path]["interactions"][0]["response"] != first[path]["interactions"][0]["response"]
    )  # a new answer (the simulator's ids and timestamps differ)


def test_identical_requests_and_repeated_runs_replay_the_answers_they_got(pytester, project):
    """Each run of a repeated test has its own recording; identical requests within one
    test replay in the order they were recorded: the distinct answers (here, the
    simulator's response ids) come back as they came."""
    project(
        test_repeat="""
        import json
        import pytest

        @pytest.mark.llm(repeat=3)
        def test_sampled(llm_http_client, llm_model, request, tmp_path_factory):
            ids = []
            for _ in range(2):
                r = llm_http_client.post("/chat/completions", json={
                    "model": llm_model.model, "messages": [{"role": "user", "content": "hi"}]})
                ids.append(r.json()["id"])
            with open(request.config.rootpath / "ids.jsonl", "a") as fh:
                fh.write(json.dumps({"test": request.node.name, "ids": ids}) + "\\n")
        """
    )
    ids_file = pytester.path / "ids.jsonl"
    pytester.runpytest("--models=sim-a", "--llm-record=new").assert_outcomes(passed=1, skipped=2)
    live = sorted(ids_file.read_text().splitlines())
    ids_file.unlink()
    offline(pytester)
    pytester.runpytest("--models=sim-a", "--llm-record=replay").assert_outcomes(passed=1, skipped=2)
    assert sorted(ids_file.read_text().splitlines()) == live
    every = [i for line in live for i in json.loads(line)["ids"]]
    assert len(every) == len(set(every)) == 6
    names = sorted(p.name for p in (pytester.path / "llm_cassettes/sim-a/test_repeat").iterdir())
    assert names == [f"test_sampled[run{i}of3].json" for i in (1, 2, 3)]


def test_a_failure_the_exchange_gave_is_replayed_as_that_failure(pytester, project):
    project(test_down="def test_down(llm):\n    llm.complete('hi')\n")
    pyproject = pytester.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text()
        + '\n[tool.llm-matrix.models.sim-down]\nprovider = "simulator"\n'
        + 'simulate = { faults = [{ kind = "500", every = 1 }] }\n'
    )
    args = ["--models=sim-down", "--llm-max-attempts=2", "-p", "no:randomly"]
    live = pytester.runpytest(*args, "--llm-record=new")
    live.assert_outcomes(failed=1)
    live.stdout.fnmatch_lines(["*sim-down: HTTP 500 * gave up after 2 attempts*"])
    offline(pytester)
    replay = pytester.runpytest(*args, "--llm-record=replay")
    replay.assert_outcomes(failed=1)
    replay.stdout.fnmatch_lines(["*sim-down: HTTP 500 * gave up after 2 attempts*"])


def test_unreadable_recordings_fail_the_test_naming_the_file_and_the_fix(pytester, project):
    project(test_suite="def test_plain(llm):\n    assert llm.complete('capital') == 'Paris'\n")
    pytester.runpytest("--models=sim-a", "--llm-record=new").assert_outcomes(passed=1)
    path = pytester.path / "llm_cassettes/sim-a/test_suite/test_plain.json"
    offline(pytester)
    for text, said in (
        ("{not json", "is not JSON"),
        ('{"version": 99, "interactions": []}', "has version 99; this plugin reads version 1"),
        ('{"version": 1, "interactions": [{"request": {}}]}', "interaction 1: 'request' needs"),
    ):
        path.write_text(text)
        result = pytester.runpytest("--models=sim-a", "--llm-record=replay")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([f"*sim-a: *test_plain.json*{said}*--llm-record=all*"])


def test_unused_recordings_are_listed_after_a_full_replay_and_pruned(pytester, project):
    project(test_suite=SUITE)
    pytester.runpytest("--models=sim-a", "--llm-record=new").assert_outcomes(passed=5)
    folder = pytester.path / "llm_cassettes/sim-a"
    plain = folder / "test_suite/test_plain.json"
    (folder / "test_suite/test_renamed.json").write_text(plain.read_text())
    (folder / "test_deleted").mkdir()
    (folder / "test_deleted/test_a.json").write_text(plain.read_text())
    offline(pytester)
    narrowed = pytester.runpytest("--models=sim-a", "--llm-record=prune", "-k", "plain")
    narrowed.assert_outcomes(passed=1)
    narrowed.stdout.fnmatch_lines(["deleted nothing: * (this one had -k)"])
    assert (folder / "test_deleted/test_a.json").exists()  # -k: nothing is known
    listed = pytester.runpytest("--models=sim-a", "--llm-record=replay")
    listed.stdout.fnmatch_lines(
        [
            "2 recordings no test used (delete with --llm-record=prune):",
            "  llm_cassettes/sim-a/test_deleted/test_a.json",
            "  llm_cassettes/sim-a/test_suite/test_renamed.json",
        ]
    )
    pruned = pytester.runpytest("--models=sim-a", "--llm-record=prune", "-n", "2")
    pruned.assert_outcomes(passed=5)
    pruned.stdout.fnmatch_lines(["deleted 2 recordings no test used:"])
    assert not (folder / "test_deleted").exists()
    assert not (folder / "test_suite/test_renamed.json").exists()
    assert plain.exists()


def test_the_folder_and_the_ignored_fields_are_configurable(pytester, project):
    """--llm-cassettes DIR, the config's cassettes and record keys, and record_ignore:
    a volatile field (a per-run trace id) is left out of the match and of the file."""
    project(
        test_suite="""
        import uuid

        def test_traced(llm_http_client, llm_model):
            body = {"model": llm_model.model, "messages": [{"role": "user", "content": "hi"}],
                    "metadata": {"trace": str(uuid.uuid4())}, "user": str(uuid.uuid4()),
                    "safety": {"trace_id": str(uuid.uuid4()), "level": 1}}
            assert llm_http_client.post("/chat/completions", json=body).status_code == 200
        """
    )
    pyproject = pytester.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.llm-matrix.simulator]",
            '[tool.llm-matrix]\nrecord = "new"\ncassettes = "recorded"\n'
            'record_ignore = ["user", "metadata", "safety.trace_id"]\n\n'
            "[tool.llm-matrix.simulator]",
        )
    )
    pytester.runpytest("--models=sim-a").assert_outcomes(passed=1)
    (path,) = (pytester.path / "recorded").rglob("*.json")
    assert path.relative_to(pytester.path) == Path("recorded/sim-a/test_suite/test_traced.json")
    recorded = json.loads(path.read_text())["interactions"][0]["request"]["json"]
    assert recorded["safety"] == {"level": 1}
    assert "user" not in recorded
    offline(pytester)
    pytester.runpytest("--models=sim-a", "--llm-record=replay").assert_outcomes(passed=1)
    elsewhere = pytester.runpytest("--models=sim-a", "--llm-record=replay", "--llm-cassettes=x")
    elsewhere.stdout.fnmatch_lines(
        ["*x/sim-a/test_suite/test_traced.json does not exist; run pytest --llm-record=new "
         "--models=sim-a --llm-cassettes=*/x 'test_suite.py::test_traced[[]sim-a[]]' to record it"]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--llm-record=sometimes"], "*argument --llm-record: invalid choice: 'sometimes'*"),
        (["--llm-cassettes="], "*--llm-cassettes: expected a folder, got ''*"),
    ],
)
def test_bad_record_options_are_usage_errors(pytester, project, args, said):
    project(test_suite=SUITE)
    result = pytester.runpytest("--models=sim-a", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([said])


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ('record = "maybe"', "*setting 'record': expected one of off, replay, new, all, prune*"),
        ("record_ignore = [1]", "*setting 'record_ignore': expected a list of field names*"),
        ('cassettes = ""', "*setting 'cassettes': expected a non-empty string*"),
    ],
)
def test_bad_record_settings_are_usage_errors(pytester, project, setting, said):
    project(test_suite=SUITE)
    pyproject = pytester.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.llm-matrix.simulator]",
            f"[tool.llm-matrix]\n{setting}\n\n[tool.llm-matrix.simulator]",
        )
    )
    result = pytester.runpytest("--models=sim-a")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([said])


def test_a_key_in_a_request_or_an_answer_is_masked_and_still_matches(pytester, project):
    """A key the test itself puts in a prompt is masked in the file; a replay masks the
    live request the same way, so it still matches."""
    project(
        test_leak="""
        import os

        def test_leak(llm_http_client, llm_model):
            prompt = "the key is " + os.environ["REC_TEST_KEY"]
            body = {"model": llm_model.model, "messages": [{"role": "user", "content": prompt}]}
            answer = llm_http_client.post("/chat/completions", json=body)
            assert answer.status_code == 200
        """
    )
    pytester.runpytest("--models=keyed", "--llm-record=new").assert_outcomes(passed=1)
    (path,) = (pytester.path / "llm_cassettes").rglob("*.json")
    text = path.read_text()
    assert KEY not in text
    assert KEY[:8] not in text
    assert KEY[-8:] not in text
    assert "the key is " in text
    offline(pytester)
    pytester.runpytest("--models=keyed", "--llm-record=replay").assert_outcomes(passed=1)


def test_only_a_run_of_every_collected_test_prunes(pytester, project):
    """A test id given, or tests deselected by a plugin (here a conftest, also under
    xdist, where the workers deselect): nothing is known of the others' recordings."""
    project(test_suite=SUITE)
    pytester.runpytest("--models=sim-a", "--llm-record=new").assert_outcomes(passed=5)
    before = sorted(cassettes(pytester))
    offline(pytester)
    one = pytester.runpytest(
        "--models=sim-a", "--llm-record=prune", "test_suite.py::test_plain[sim-a]"
    )
    one.assert_outcomes(passed=1)
    one.stdout.fnmatch_lines(["deleted nothing: * (this one had a test id argument)"])
    pytester.makeconftest(
        NO_NETWORK
        + textwrap.dedent(
            """
            def pytest_collection_modifyitems(config, items):
                gone = [i for i in items if "stream" in i.name]
                config.hook.pytest_deselected(items=gone)
                items[:] = [i for i in items if i not in gone]
            """
        )
    )
    for workers in ([], ["-n", "2"]):
        some = pytester.runpytest("--models=sim-a", "--llm-record=prune", *workers)
        some.assert_outcomes(passed=4)
        some.stdout.fnmatch_lines(["deleted nothing: * (this one had deselected tests)"])
    assert sorted(cassettes(pytester)) == before


def test_a_stream_the_test_stops_reading_is_recorded_whole(pytester, project):
    """The client closes the stream early (the SDK's loop breaks; a generator is dropped
    after its first piece): recording reads the rest, so the replay has the whole answer."""
    project(
        test_early="""
        def test_sdk_break(openai_client, llm_model):
            stream = openai_client.chat.completions.create(
                model=llm_model.model, messages=[{"role": "user", "content": "capital"}],
                stream=True,
            )
            for chunk in stream:
                break
            stream.close()

        def test_first_piece(llm):
            pieces = iter(llm.stream("capital?"))
            assert next(pieces) is not None
        """
    )
    recorded = pytester.runpytest("--models=sim-a", "--llm-record=new", "-W", "error")
    recorded.assert_outcomes(passed=2)
    recorded.stdout.fnmatch_lines(["*--llm-record=new: 0 requests replayed, 2 sent and recorded*"])
    for entry in cassettes(pytester).values():
        assert entry["interactions"][0]["response"]["events"][-1] == {"data": "[DONE]"}
    offline(pytester)
    pytester.runpytest("--models=sim-a", "--llm-record=replay").assert_outcomes(passed=2)


def test_a_refused_key_or_a_lost_connection_is_not_recorded(pytester, project, monkeypatch):
    """A wrong key (401: the model is unavailable) is not the model's answer: nothing is
    recorded, and the run with the right key records the real answer."""
    project(test_suite="def test_plain(llm):\n    assert llm.complete('capital') == 'Paris'\n")
    monkeypatch.setenv("REC_TEST_KEY", "sk-wrong-0000000000000000")
    refused = pytester.runpytest("--models=keyed", "--llm-record=new")
    refused.assert_outcomes(errors=1)  # found by its key check, before the test
    refused.stdout.fnmatch_lines(["*keyed is unavailable: HTTP 401*"])
    assert cassettes(pytester) == {}
    monkeypatch.setenv("REC_TEST_KEY", KEY)
    pytester.runpytest("--models=keyed", "--llm-record=new").assert_outcomes(passed=1)
    (entry,) = cassettes(pytester).values()
    assert "failure" not in entry["interactions"][0]


def test_a_recording_that_cannot_be_written_errors_its_test_plainly(pytester, project):
    project(test_suite="def test_plain(llm):\n    assert llm.complete('capital') == 'Paris'\n")
    folder = pytester.path / "llm_cassettes/sim-a"
    folder.mkdir(parents=True)
    (folder / "test_suite").write_text("a file where the folder would be")
    result = pytester.runpytest("--models=sim-a", "--llm-record=all")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*sim-a: could not write the recording llm_cassettes/sim-a/test_suite/test_plain.json:*"]
    )
    # new reads the recording first: it cannot, and says so
    read = pytester.runpytest("--models=sim-a", "--llm-record=new")
    read.assert_outcomes(failed=1)
    read.stdout.fnmatch_lines(
        ["*sim-a: the recording */test_plain.json cannot be opened (Not a directory); re-record*"]
    )
    for run in (result, read):
        assert "Traceback" not in run.stdout.str()
        assert "recording.py" not in run.stdout.str()


def test_files_are_readable_by_others_and_keys_in_numbers_stay_numbers(tmp_path):
    """A new recording gets the mode a new file gets (not mkstemp's 0600), a rewritten one
    keeps its mode; keys are masked in strings only, so numbers that happen to hold a
    key's digits stay numbers and the file stays JSON."""
    import os

    from pytest_llm_matrix.calls import context, recording
    from pytest_llm_matrix.config.redaction import Redactor

    os.environ["REC_UNIT_KEY"] = "sk-abcdefghij12345678"
    try:
        redactor = Redactor(["REC_UNIT_KEY"])
        recorder = recording.Recorder("new", tmp_path, mask=redactor.data)
        ctx = context.TestContext("t.py::test_x[m]", "m")
        recording.configure(recorder)
        tape = recording.tape_for(ctx, "m")
        assert tape is not None
        tape.add(
            {
                "request": {"method": "POST", "path": "/v1/x",
                            "json": {"k": os.environ["REC_UNIT_KEY"]}},
                "key": "",
                "response": {"status": 200, "content_type": "application/json",
                             "json": {"created": 12345678, "id": "x-sk-abcdefghij12345678"}},
            }
        )  # fmt: skip
        recording.flush(ctx)
    finally:
        recording.configure(None)
        del os.environ["REC_UNIT_KEY"]
    path = tmp_path / "llm_cassettes/m/t/test_x.json"
    data = json.loads(path.read_text())
    answer = data["interactions"][0]["response"]["json"]
    assert answer["created"] == 12345678
    assert "abcdefghij" not in path.read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    path.chmod(0o640)
    tape.changed = True
    recording.write_atomically(path, path.read_text())
    assert path.stat().st_mode & 0o777 == 0o640


def test_the_ini_ignore_list_is_checked(pytester, project):
    project(test_suite=SUITE)
    result = pytester.runpytest("--models=sim-a", "-o", "llm_record_ignore=a..b")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini llm_record_ignore: expected a list of field names*"])


# --- hostile names, folders, files and streams ----------------------------------------


def every_file(root: Path) -> dict[str, str]:
    """Every file under ``root``, by path relative to it: its text."""
    return {
        str(p.relative_to(root)): p.read_text(errors="replace")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_key_in_a_test_id_is_in_no_file_name(pytester, project):
    """A test parametrized with a configured key (here the keyed model's, run on another
    model): its recording's name has a hash where the key was; the replay finds it."""
    from pytest_llm_matrix.config.redaction import forms_of

    project(
        test_param="""
        import os
        import pytest

        @pytest.mark.parametrize("k", [os.environ["REC_TEST_KEY"], "plain"])
        def test_param_key(llm, k):
            assert llm.complete("capital " + k[:3]) == "Paris"
        """
    )
    pytester.runpytest("--models=sim-a", "--llm-record=all").assert_outcomes(passed=2)
    files = every_file(pytester.path / "llm_cassettes")
    assert len(files) == 2
    assert "sim-a/test_param/test_param_key[plain].json" in files
    for name, text in files.items():
        for form in forms_of(KEY):
            assert form[:8] not in name
            assert form[:8] not in text
    offline(pytester)
    for workers in ([], ["-n", "2"]):
        replay = pytester.runpytest("--models=sim-a", "--llm-record=replay", *workers)
        replay.assert_outcomes(passed=2)
        replay.stdout.fnmatch_lines(["*--llm-record=replay: 2 requests replayed, none sent*"])
        assert "recordings no test used" not in replay.stdout.str()


def test_a_fake_key_of_the_same_kind_records_the_same_with_the_key_set_or_not(
    pytester, project, monkeypatch
):
    """A fake key that shares only its kind with a real one set in the environment
    (``sk-proj-invalid``; OpenAI's kind is 8 characters): neither its test's file name nor
    its prompt depends on the real key being set, so a replay or a prune where it is unset
    (CI) finds what a run with it set recorded (they missed, and prune deleted it)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-Zq81XwPe5NvU7sRt2LkJ9HgF")
    project(
        test_fake="""
        import pytest

        @pytest.mark.parametrize("k", ["sk-proj-invalid"])
        def test_rejects(llm, k):
            assert llm.complete(f"capital: is {k} a valid key?") == "Paris"
        """
    )
    pytester.runpytest("--models=sim-a", "--llm-record=all").assert_outcomes(passed=1)
    files = every_file(pytester.path / "llm_cassettes")
    assert list(files) == ["sim-a/test_fake/test_rejects[sk-proj-invalid].json"]
    assert "is sk-proj-invalid a valid key?" in next(iter(files.values()))
    offline(pytester)
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("REC_TEST_KEY")
    replay = pytester.runpytest("--models=sim-a", "--llm-record=replay")
    replay.assert_outcomes(passed=1)
    replay.stdout.fnmatch_lines(["*--llm-record=replay: 1 requests replayed, none sent*"])
    pytester.runpytest("--models=sim-a", "--llm-record=prune").assert_outcomes(passed=1)
    assert every_file(pytester.path / "llm_cassettes") == files


def test_ids_apart_only_in_dots_or_letter_case_have_recordings_of_their_own(pytester, project):
    """``a::b`` and ``a.b``, ``Ab`` and ``aB``: each its own file (also where letter case is
    ignored), each replayed with its own answer."""
    project(
        test_ids="""
        import pytest

        @pytest.mark.parametrize("q", ["a::b", "a.b", "Ab", "aB"])
        def test_q(llm_http_client, llm_model, q):
            body = {"model": llm_model.model, "messages": [{"role": "user", "content": q}]}
            assert llm_http_client.post("/chat/completions", json=body).status_code == 200

        class TestChat:
            def test_hello(self, llm):
                assert llm.complete("hello") == "ok"
        """
    )
    pytester.runpytest("--models=sim-a", "--llm-record=all").assert_outcomes(passed=5)
    names = [p.name for p in (pytester.path / "llm_cassettes/sim-a/test_ids").iterdir()]
    assert len({name.lower() for name in names}) == len(names) == 5
    assert "test_q[a.b].json" in names
    offline(pytester)
    replay = pytester.runpytest("--models=sim-a", "--llm-record=prune")
    replay.assert_outcomes(passed=5)
    replay.stdout.fnmatch_lines(["*--llm-record=prune: 5 requests replayed, none sent*"])
    assert "deleted" not in replay.stdout.str()


def test_a_recording_under_the_name_an_earlier_version_gave_is_still_read(pytester, project):
    """Names that changed (a class's upper-case letters are hashed now): a recording kept
    under its old name replays, is not pruned, and its test's next recording gets the new
    name (prune then deletes the old one)."""
    project(test_cls="class TestChat:\n    def test_hi(self, llm):\n        llm.complete('hi')\n")
    pytester.runpytest("--models=sim-a", "--llm-record=all").assert_outcomes(passed=1)
    folder = pytester.path / "llm_cassettes/sim-a/test_cls"
    (new,) = folder.iterdir()
    assert new.name.startswith("TestChat.test_hi#")
    old = folder / "TestChat.test_hi.json"
    new.rename(old)
    offline(pytester)
    replay = pytester.runpytest("--models=sim-a", "--llm-record=prune")
    replay.assert_outcomes(passed=1)
    assert "deleted" not in replay.stdout.str()
    assert old.exists()
    (pytester.path / "conftest.py").unlink()  # online again
    pytester.runpytest("--models=sim-a", "--llm-record=all").assert_outcomes(passed=1)
    offline(pytester)
    assert sorted(p.name for p in folder.iterdir()) == sorted([new.name, old.name])
    pruned = pytester.runpytest("--models=sim-a", "--llm-record=prune")
    pruned.stdout.fnmatch_lines(["deleted 1 recording no test used:", "*TestChat.test_hi.json"])
    assert [p.name for p in folder.iterdir()] == [new.name]


def test_a_test_module_outside_the_rootdir_records_under_the_rootdir(pytester, project):
    """The rootdir is a subfolder (its config file there), the test file beside it: pytest
    names the test without its module; its recordings go to a folder of their own."""
    project(test_inside="")  # a module of the project, not collected: a path is given
    (pytester.path / "proj").mkdir()
    (pytester.path / "pyproject.toml").rename(pytester.path / "proj/pyproject.toml")
    (pytester.path / "outside").mkdir()
    (pytester.path / "outside/test_out.py").write_text(
        "def test_x(llm):\n    assert llm.complete('capital') == 'Paris'\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(pytester.path / "proj")
        args = ["-c", "pyproject.toml", "--models=sim-a", "../outside/test_out.py"]
        recorded = pytester.runpytest(*args, "--llm-record=new")
        recorded.assert_outcomes(passed=1)
        (path,) = (pytester.path / "proj/llm_cassettes").rglob("*.json")
        assert path.parent.parent == pytester.path / "proj/llm_cassettes/sim-a"
        assert path.parent.name.startswith("outside-rootdir#")
        assert path.name == "test_x.json"
        replay = pytester.runpytest(*args, "--llm-record=prune")
        replay.assert_outcomes(passed=1)
        replay.stdout.fnmatch_lines(["*--llm-record=prune: 1 requests replayed, none sent*"])
        assert path.exists()


def test_prune_deletes_only_recordings_and_only_folders_it_empties(pytester, project):
    """With the cassettes folder the project itself and a model named ``data``, the files
    of the project's own data folder are left alone: prune deletes only the recordings of
    ``data`` that no test read."""
    project(test_suite="def test_plain(llm):\n    assert llm.complete('capital') == 'Paris'\n")
    pyproject = pytester.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.llm-matrix.simulator]",
            '[tool.llm-matrix]\ncassettes = "."\n\n[tool.llm-matrix.simulator]',
        )
        + '\n[tool.llm-matrix.models.data]\nprovider = "simulator"\n'
    )
    pytester.runpytest("--models=data", "--llm-record=new").assert_outcomes(passed=1)
    recorded = pytester.path / "data/test_suite/test_plain.json"
    golden = pytester.path / "data/golden"
    golden.mkdir()
    users = {
        golden / "expected_outputs.json": '{"test_plain": "Paris"}',
        golden / "other.json": recorded.read_text().replace('"model": "data"', '"model": "x"'),
        golden / "v2.json": recorded.read_text().replace('"version": 1', '"version": 2'),
        golden / "broken.json": "{",
        pytester.path / "data/other.json": recorded.read_text(),
        pytester.path / "data/gone/notes.json": "[]",
    }
    for path, text in users.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    stale = [golden / "stale.json", pytester.path / "data/gone/test_a.json"]
    stale.append(pytester.path / "data/deleted/test_b.json")
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_text(recorded.read_text())
    offline(pytester)
    listed = pytester.runpytest("--models=data", "--llm-record=replay")
    listed.stdout.fnmatch_lines(
        [
            "3 recordings no test used (delete with --llm-record=prune):",
            "  data/deleted/test_b.json",
            "  data/golden/stale.json",
            "  data/gone/test_a.json",
        ]
    )
    pruned = pytester.runpytest("--models=data", "--llm-record=prune")
    pruned.assert_outcomes(passed=1)
    pruned.stdout.fnmatch_lines(["deleted 3 recordings no test used:"])
    for path, text in users.items():
        assert path.read_text() == text
    assert not any(path.exists() for path in stale)
    assert not (pytester.path / "data/deleted").exists()  # emptied: removed
    assert recorded.exists()


def test_a_key_streamed_a_few_characters_per_event_is_masked(pytester, project):
    """The simulator streams the key four characters per event (OpenAI and Anthropic
    shapes): the joined text is masked, as the same answer not streamed is; the replay
    gives the masked answer."""
    project(
        test_secret="""
        def test_streamed(llm):
            assert "".join(llm.stream("secret?")).startswith("the key is ")

        def test_whole(llm):
            assert llm.complete("secret!").startswith("the key is ")
        """
    )
    pyproject = pytester.path / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'rules = [{ match = "(?i)capital", reply = "Paris" }]',
            f'rules = [{{ match = "(?i)secret", reply = "the key is {KEY}, keep it" }}]',
        )
    )
    args = ["--models=sim-a,sim-claude", "-p", "no:randomly"]
    pytester.runpytest(*args, "--llm-record=new").assert_outcomes(passed=4)
    files = cassettes(pytester)
    assert len(files) == 4
    for name, document in files.items():
        answer = document["interactions"][0]["response"]
        if "events" in answer:
            text = "".join(
                (e["data"].get("choices") or [{}])[0].get("delta", {}).get("content") or ""
                if "choices" in e["data"]
                else e["data"].get("delta", {}).get("text") or ""
                for e in answer["events"]
                if isinstance(e.get("data"), dict)
            )
        else:
            text = json.dumps(answer["json"])
        assert "the key is ***" in text, name
        assert ", keep it" in text, name
        for piece in (KEY[:8], KEY[8:16], KEY[-8:]):
            assert piece not in text, name
    offline(pytester)
    pytester.runpytest(*args, "--llm-record=replay").assert_outcomes(passed=4)


@pytest.mark.timeout(60)
def test_hostile_files_at_a_recordings_path_fail_their_test_plainly(pytester, project):
    """A FIFO (never waited on), a link to /dev/zero (never read), 100,000 levels of nesting
    and a file too big: the test fails naming the file, the cause and the fix; a recorded
    content type that is not ASCII is replayed."""
    import os

    project(test_suite="def test_plain(llm):\n    assert llm.complete('capital') == 'Paris'\n")
    pytester.runpytest("--models=sim-a", "--llm-record=new").assert_outcomes(passed=1)
    path = pytester.path / "llm_cassettes/sim-a/test_suite/test_plain.json"
    good = path.read_text()
    offline(pytester)
    for case, said in (
        ("fifo", "is not a regular file (a FIFO)"),
        ("zero", "is not a regular file (a device)"),
        ("deep", "is nested more than 200 levels deep"),
    ):
        path.unlink()
        if case == "fifo":
            os.mkfifo(path)
        elif case == "zero":
            path.symlink_to("/dev/zero")
        else:
            path.write_text("[" * 100_000 + "]" * 100_000)
        result = pytester.runpytest("--models=sim-a", "--llm-record=replay")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            [f"*sim-a: the recording */test_plain.json {said}; re-record it with --llm-record=all*"]
        )
        assert "Traceback" not in result.stdout.str()
        assert "recording.py" not in result.stdout.str()
    path.unlink()
    document = json.loads(good)
    document["interactions"][0]["response"]["content_type"] = "application/json; x=é"
    path.write_text(json.dumps(document, ensure_ascii=False))
    pytester.runpytest("--models=sim-a", "--llm-record=replay").assert_outcomes(passed=1)
