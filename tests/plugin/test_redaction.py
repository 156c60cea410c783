"""API keys never leave the process: not in any report, file or summary the run writes,
whatever a server echoes and whichever client path the test takes."""

from __future__ import annotations

import json
import pathlib
import textwrap
import urllib.parse

import pytest

from pytest_llm_matrix.config.redaction import MASK, Redactor, forms_of, mask

from ..echo_server import EchoServer

KEY = "sk-test-ZQX9distinctive0key0Secret4242"
#: Every 8 characters of the key after its generic "sk-test-" start: none may show.
PIECES = tuple(KEY[i : i + 8] for i in range(4, len(KEY) - 7))


def leaks(text: str) -> list[str]:
    return [piece for piece in PIECES if piece in text]


# -- the masking itself -------------------------------------------------------------------


def test_mask_replaces_the_key_and_its_cut_start():
    forms = forms_of(KEY)
    assert mask(f"key {KEY}!", forms) == f"key {MASK}!"
    cut = ("x" * 188 + KEY)[:200]  # the key's kind and 4 characters of its secret
    assert mask(cut, forms) == "x" * 188 + MASK
    assert mask("sk-test", forms) == "sk-test"  # shorter than a match: nothing to hide
    # its kind is the same in every key of the kind: a test's fake key is not masked (and
    # what a recording holds does not change with the keys set where it is replayed)
    assert mask("a fake sk-test-invalid key", forms) == "a fake sk-test-invalid key"
    assert mask("sk-test-ZQX", forms) == "sk-test-ZQX"  # 3 of its secret: no match yet


def test_mask_finds_a_key_cut_in_the_middle():
    # pytest shortens long values in assertion messages: 'start...end'
    shown = f"assert ['{KEY[:14]}...{KEY[-12:]}'] == []"
    assert mask(shown, forms_of(KEY)) == f"assert ['{MASK}...{MASK}'] == []"


def test_mask_finds_escaped_and_encoded_forms():
    key = 'sk-live-with"quote\\and\nnewline-0123456789'
    forms = forms_of(key)
    for shown in (repr(key), json.dumps(key), "Bearer%20" + urllib.parse.quote(key, safe="")):
        assert "newline-0123456789" not in mask(shown, forms), shown
    header = repr(("Bearer " + key).encode())  # httpx's "Illegal header value b'...'"
    assert "newline-0123456789" not in mask(header, forms)


def test_mask_finds_a_key_in_other_case_or_encoded_whole():
    forms = forms_of(KEY)
    for shown in (
        KEY.lower(),
        KEY.upper(),
        "".join(f"%{ord(c):02X}" if c == "-" else c for c in KEY),
    ):
        assert mask(f"echo {shown}!", forms) == f"echo {MASK}!", shown


def test_key_with_surrounding_whitespace_is_found_stripped():
    forms = forms_of(f"  {KEY}\n")
    assert mask(f"Bearer {KEY}", forms) == f"Bearer {MASK}"


def test_short_values_are_placeholders_not_secrets(monkeypatch):
    monkeypatch.setenv("LLM_MATRIX_TEST_KEY", "EMPTY")
    redactor = Redactor(["LLM_MATRIX_TEST_KEY"])
    assert redactor.text("EMPTY means no key") == "EMPTY means no key"


def test_a_models_secrets_are_masked_together(monkeypatch):
    """A model's key and its secret header may share their end: masked one after the other,
    the first one's mask would leave the second's start showing."""
    from pytest_llm_matrix.calls.exchange import redact
    from pytest_llm_matrix.config.models import Model

    monkeypatch.setenv("RED_TEST_KEY", "AAAAAAAAAAAAZZZZZZZZZZZZ")
    monkeypatch.setenv("RED_TEST_TEAM", "BBBBBZZZZZZZZZZZZ")
    model = Model(
        name="m", provider="openai-compatible", model="m", api="openai",
        api_key_env="RED_TEST_KEY", headers={"X-Team": {"env": "RED_TEST_TEAM"}},
    )  # fmt: skip
    assert redact("T=BBBBBZZZZZZZZZZZZ K=AAAAAAAAAAAAZZZZZZZZZZZZ", model) == f"T={MASK} K={MASK}"


def test_redactor_reads_the_key_when_it_checks(monkeypatch):
    redactor = Redactor(["LLM_MATRIX_TEST_KEY"])
    monkeypatch.delenv("LLM_MATRIX_TEST_KEY", raising=False)
    assert redactor.text(KEY) == KEY
    monkeypatch.setenv("LLM_MATRIX_TEST_KEY", KEY)
    assert redactor.text(f"[{KEY}]") == f"[{MASK}]"
    assert redactor.data({"a": [f"x{KEY}", ("y", KEY)], "n": 3}) == {
        "a": [f"x{MASK}", ("y", MASK)],
        "n": 3,
    }


class Shown:
    """A value that is not JSON data: shown by its text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class Request(dict):
    """A dict whose text shows more than its items (JSON writes only the items)."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(method="POST")
        self.headers = headers

    def __repr__(self) -> str:
        return f"Request({dict(self)}, headers={self.headers})"


@pytest.mark.parametrize(
    "key",
    [KEY, 'sk-with"quote-0123456789', "sk-with\\backslash-0123456789", "sk-ctl\x01-0123456789"],
    ids=["plain", "quote", "backslash", "control"],
)
def test_data_is_redacted_wherever_a_key_hides_in_it(monkeypatch, key):
    """Data with no piece of a key anywhere comes back as it is (one look at its JSON text;
    rebuilt, string by string, for a key with characters JSON escapes); a key in any string,
    in a key of a dict, or in a value that is not JSON data is masked."""
    monkeypatch.setenv("LLM_MATRIX_TEST_KEY", key)
    redactor = Redactor(["LLM_MATRIX_TEST_KEY"])
    clean = {"tests": [{"id": f"t{i}", "out": "fine", "n": i, "x": None} for i in range(500)]}
    assert redactor.data(clean) == clean
    assert (redactor.data(clean) is clean) == (key == KEY)
    hidden = [
        {"tests": [*clean["tests"], {"id": "t", "out": f"said {key}!"}]},
        {f"by {key}": 1},
        [1, 2.5, (True, Shown(f"<{key}>"))],
        {"raw": f"a {key}".encode()},
        {"props": [("request", Request({"Authorization": f"Bearer {key}"}))]},
    ]
    for data in hidden:
        assert key not in json.dumps(redactor.data(data), default=str)
        assert MASK in json.dumps(redactor.data(data), default=str)


# -- end to end ---------------------------------------------------------------------------

ECHO_MODES = {
    "o-json400": ("openai-compatible", "json-400"),
    "o-json422": ("openai-compatible", "json-422"),
    "o-json401": ("openai-compatible", "json-401"),
    "o-json500": ("openai-compatible", "json-500"),
    "o-text400": ("openai-compatible", "text-400"),
    "o-cut400": ("openai-compatible", "cut-400"),
    "o-sse": ("openai-compatible", "sse"),
    "a-json400": ("anthropic", "json-400"),
    "a-json422": ("anthropic", "json-422"),
    "a-json500": ("anthropic", "json-500"),
    "a-cut400": ("anthropic", "cut-400"),
    "a-sse": ("anthropic", "sse"),
}


def echo_config(url: str) -> str:
    tables = []
    for alias, (provider, mode) in ECHO_MODES.items():
        suffix = "/v1" if provider != "anthropic" else ""
        tables.append(
            f'[tool.llm-matrix.models.{alias}]\nprovider = "{provider}"\n'
            f'base_url = "{url}/{mode}{suffix}"\napi_key_env = "ECHO_KEY"\n'
        )
    return "[tool.llm-matrix]\n" + "\n".join(tables)


EVERY_CLIENT_PATH = """
import asyncio
import logging
import os

import pytest

log = logging.getLogger("echo")


def path_of(model):
    return "/v1/messages" if model.api == "anthropic" else "/chat/completions"


def body_of(model):
    return {"model": model.model, "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]}


def test_llm_complete(llm):
    print("answer:", llm.complete("hi"))


def test_llm_stream(llm):
    assert "".join(llm.stream("hi")) == "a stream"


def test_llm_async(llm):
    async def both():
        return await llm.acomplete("hi"), [p async for p in llm.astream("hi")]

    assert asyncio.run(both())


def test_httpx2_client(llm_http_client, llm_model):
    response = llm_http_client.post(path_of(llm_model), json=body_of(llm_model))
    body = response.text  # shown by -l
    print("body:", body)
    log.error("the server said %s", body)
    assert response.status_code == 200, body


def test_httpx_client(llm_httpx_client, llm_model):
    response = llm_httpx_client.post(path_of(llm_model), json=body_of(llm_model))
    response.raise_for_status()
    assert response.json()["choices"], response.text


def test_async_clients(llm_async_http_client, llm_async_httpx_client, llm_model):
    async def post(client):
        async with client:
            response = await client.post(path_of(llm_model), json=body_of(llm_model))
            return response.text

    texts = [asyncio.run(post(c)) for c in (llm_async_http_client, llm_async_httpx_client)]
    assert texts == ["ok", "ok"]


def test_openai_sdk(openai_client, llm_model):
    messages = [{"role": "user", "content": "hi"}]
    try:
        openai_client.chat.completions.create(model=llm_model.model, messages=messages)
    except Exception as error:
        print("first call:", error)
    stream = openai_client.chat.completions.create(
        model=llm_model.model, messages=messages, stream=True)
    assert [chunk for chunk in stream]


def test_anthropic_sdk(anthropic_client, llm_model):
    messages = [{"role": "user", "content": "hi"}]
    try:
        anthropic_client.messages.create(model=llm_model.model, max_tokens=5, messages=messages)
    except Exception as error:
        print("first call:", error)
    with anthropic_client.messages.stream(
        model=llm_model.model, max_tokens=5, messages=messages
    ) as stream:
        assert stream.get_final_text()


@pytest.mark.llm(repeat=2, min_pass_rate=0.5)
def test_repeated(llm):
    llm.complete("hi")
"""


def everything_written(root: pathlib.Path, result: pytest.RunResult) -> dict[str, str]:
    """The run's output and every file under the project, by name."""
    texts = {"stdout": result.stdout.str(), "stderr": result.stderr.str()}
    for path in root.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:  # (compiled test sources)
            texts[str(path.relative_to(root))] = path.read_text(errors="replace")
    return texts


# (the two spellings on the two paths, not each on each: a key is masked where it is found,
# whatever the process, and the run takes half a minute)
@pytest.mark.parametrize(
    ("spelling", "workers"),
    [(KEY, []), (f"  {KEY}\n", ["-n", "2"])],
    ids=["key-plain", "key-with-newline-n2"],
)
def test_an_echoed_key_is_found_nowhere(pytester, write_config, monkeypatch, workers, spelling):
    monkeypatch.setenv("ECHO_KEY", spelling)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    with EchoServer() as server:
        write_config(echo_config(server.url))
        pytester.makepyfile(test_echo=EVERY_CLIENT_PATH)
        result = pytester.runpytest_subprocess(
            "--models=all",
            "-rA",
            "--tb=long",
            "-l",
            "--junitxml=junit.xml",
            "--llm-report=report.json",
            "--llm-max-attempts=2",
            "--llm-max-wait=0.05",  # (the retried 500s' backoff: the run's time, not the test's)
            "-p",
            "no:cacheprovider",
            *workers,
        )
    texts = everything_written(pytester.path, result)
    # the run really went through the echoing paths: failures that quote the server ...
    output = texts["stdout"]
    assert "Incorrect API key provided: ***" in output
    assert "stream failed for key ***" in output
    assert "key *** refused" in output
    assert "o-json401: unavailable: HTTP 401" in output
    assert result.ret == 1
    # ... and the key is in none of it
    found = {name: leaks(text) for name, text in texts.items() if leaks(text)}
    assert found == {}
    assert {"junit.xml", "report.json", "summary.md"} <= set(texts)


def test_a_key_in_a_collection_error_is_redacted(pytester, write_config, monkeypatch):
    monkeypatch.setenv("ECHO_KEY", KEY)
    write_config(echo_config("http://127.0.0.1:9"))
    pytester.makepyfile(
        test_broken="import os\nraise RuntimeError('bad key ' + os.environ['ECHO_KEY'])\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == 2
    assert "bad key ***" in result.stdout.str()
    assert leaks(result.stdout.str() + result.stderr.str()) == []


def test_a_subtest_printing_the_key_is_redacted(pytester, write_config, monkeypatch):
    if not hasattr(pytest, "Subtests"):
        pytest.skip("pytest < 9 has no built-in subtests")
    monkeypatch.setenv("ECHO_KEY", KEY)
    write_config(echo_config("http://127.0.0.1:9"))
    pytester.makepyfile(
        textwrap.dedent(
            """
            import os

            def test_parts(subtests):
                with subtests.test(msg="one"):
                    print("the key is", os.environ["ECHO_KEY"])
                    assert False
            """
        )
    )
    result = pytester.runpytest_subprocess("-rA", "-p", "no:cacheprovider")
    assert "the key is ***" in result.stdout.str()
    assert leaks(result.stdout.str()) == []


def test_without_configured_keys_reports_are_left_alone(pytester, write_config):
    write_config()
    pytester.makepyfile(f"def test_x():\n    assert '{KEY}' == 'other'\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert KEY in result.stdout.str()


OTHER_PATHS = """
import collections
import dataclasses
import os
import threading
import warnings

import pytest

KEY = os.environ["ECHO_KEY"]
Pair = collections.namedtuple("Pair", "name value")


@dataclasses.dataclass
class Holder:
    key: str


def test_properties_of_any_type(record_property, llm_model):
    record_property("pair", Pair("k", KEY))
    record_property("raw", f"Bearer {KEY}".encode())
    record_property("object", Holder(KEY))


def test_a_key_set_during_the_test(monkeypatch, llm_model):
    monkeypatch.setenv("LATE_KEY", "sk-late-0123456789abcdefLATE")
    print("configured", os.environ["LATE_KEY"])


def test_a_key_deleted_during_the_test(monkeypatch, llm_model):
    monkeypatch.delenv("ECHO_KEY")
    print("using key", KEY)
    assert False


def test_warnings(llm_model):
    warnings.warn(f"the key is {KEY}")
    thread = threading.Thread(target=lambda: (_ for _ in ()).throw(RuntimeError(f"echo {KEY}")))
    thread.start()
    thread.join()
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["plain", "n2"])
def test_keys_in_warnings_properties_and_changed_variables_are_redacted(
    pytester, write_config, monkeypatch, workers
):
    monkeypatch.setenv("ECHO_KEY", KEY)
    monkeypatch.delenv("LATE_KEY", raising=False)
    write_config(
        echo_config("http://127.0.0.1:9")
        + '[tool.llm-matrix.models.late]\nprovider = "openai-compatible"\n'
        'base_url = "http://127.0.0.1:9/v1"\napi_key_env = "LATE_KEY"\n'
    )
    pytester.makepyfile(test_other=OTHER_PATHS)
    result = pytester.runpytest_subprocess(
        "--models=o-json400",
        "-rA",
        "-W",
        "default",
        "--junitxml=junit.xml",
        "-o",
        "junit_logging=all",
        "-p",
        "no:cacheprovider",
        *workers,
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=3, failed=1)
    texts = everything_written(pytester.path, result)
    del texts["test_other.py"]  # the test's own source holds the late key
    assert "the key is ***" in texts["stdout"]
    assert "RuntimeError: echo ***" in texts["stdout"]
    assert {name: leaks(text) for name, text in texts.items() if leaks(text)} == {}
    late = "0123456789abcdefLATE"
    assert [name for name, text in texts.items() if late in text] == []
    assert "configured ***" in texts["junit.xml"]


def test_a_test_id_built_from_a_key_stays_out_of_the_files_we_write(
    pytester, write_config, monkeypatch
):
    monkeypatch.setenv("ECHO_KEY", KEY)
    write_config(echo_config("http://127.0.0.1:9"))
    pytester.makepyfile(
        "import os, pytest\n\n"
        "@pytest.mark.parametrize('key', [os.environ['ECHO_KEY']])\n"
        "def test_key(llm_model, key):\n    assert llm_model.name != 'o-json400'\n"
    )
    pytester.runpytest_subprocess("--models=o-json400,o-sse", "--llm-report=report.json")
    report = (pytester.path / "report.json").read_text()
    ours = pytester.path / ".pytest_cache" / "v" / "llm-matrix"  # (pytest's own: its business)
    cache = "".join(p.read_text() for p in ours.rglob("*") if p.is_file())
    assert leaks(report) == []
    assert "durations" in {p.name for p in ours.iterdir()}
    assert leaks(cache) == []
    assert "test_key[o-json400-***]" in report


@pytest.mark.parametrize("variable", ["OPENAI_API_KEY", "ANTHROPIC_API_KEY"])
def test_the_suites_own_sdk_key_echoed_by_an_auxiliary_server_is_found_nowhere(
    pytester, write_config, monkeypatch, variable
):
    # simulated models (no key variables) and the one-line route: the suite's own client
    # sends its own key to a server of its own (an auxiliary call, left to it) that echoes it
    monkeypatch.setenv(variable, KEY)
    with EchoServer() as server:
        write_config()
        pytester.makepyfile(
            test_aux=f"""
            import anthropic, openai

            def test_embedding(llm_model):
                if "{variable}" == "OPENAI_API_KEY":
                    client = openai.OpenAI(base_url="{server.url}/json-400/v1", max_retries=0)
                    client.embeddings.create(model="emb", input="x")
                else:
                    client = anthropic.Anthropic(base_url="{server.url}/json-400", max_retries=0)
                    client.messages.count_tokens(
                        model="m", messages=[{{"role": "user", "content": "x"}}]
                    )
            """
        )
        result = pytester.runpytest_subprocess(
            "--models=sim-fast",
            "--llm-patch-sdks",
            "--llm-record=all",
            "--llm-report=report.json",
            "--tb=long",
            "-l",
            "-p",
            "no:cacheprovider",
        )
    texts = everything_written(pytester.path, result)
    assert "Incorrect API key provided: ***" in texts["stdout"]  # the echo came back ...
    result.assert_outcomes(failed=1)
    recorded = [name for name in texts if name.startswith("llm_cassettes")]
    assert recorded  # ... was recorded ...
    found = {name: leaks(text) for name, text in texts.items() if leaks(text)}
    assert found == {}  # ... and the key is nowhere
