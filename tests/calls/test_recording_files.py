"""Record and replay, unit level: the names recordings get (unique per test id however a
file system compares letter case, no key in them, a place for a module outside the
rootdir), what the recording reader does with hostile files, and keys streamed across
events. The real sessions are in test_recording.py."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx2
import pytest

from pytest_llm_matrix.calls import recording
from pytest_llm_matrix.config.redaction import Redactor, forms_of

KEY = "sk-proj-SUPERsecret0123456789abcdef"

#: Test ids whose old file names collided (``::`` and ``.`` both written ``.``), or differ
#: only in letter case, or are long, or hold characters that escaping must keep apart.
IDS = [
    "t.py::a::b",
    "t.py::a.b",
    "t.py::A::b",
    "t.py::a::B",
    "t.py::test_x[a::b]",
    "t.py::test_x[a.b]",
    "t.py::test_x[Ab]",
    "t.py::test_x[aB]",
    "t.py::test_x[ab]",
    "t.py::test_x[a b]",
    "t.py::test_x[a%20b]",
    "t.py::test_x[a#b]",
    "t.py::test_x[a%23b]",
    "t.py::test_x[a~b]",
    "t.py::.a",
    "t.py::%2Ea",
    "t.py::x.json",
    "t.py::" + "x" * 200,
    "t.py::" + "x" * 200 + "y",
    "t.py::" + "X" * 200,
    "T.py::a",
    "t.txt::a",
    "t.txt.py::a",
    "d/t.py::a",
    "D/t.py::a",
    "d/t.json.py::a",
    "d.py::t.json",
    "::a",
    "../o/t.py::a",
    "/abs/t.py::a",
]


@pytest.mark.parametrize("base", [None, "cassettes"])
def test_two_test_ids_never_share_a_file_even_without_letter_case(tmp_path, base):
    folder = None if base is None else tmp_path / base

    def folded(path: Path) -> str:
        """The path as a file system that ignores letter case sees the plugin's names (beside
        each module, the module's own folders are real: they exist in one case only)."""
        parts = path.relative_to(tmp_path).parts
        mine = parts.index("llm_cassettes") if base is None else 0
        return "/".join([*parts[:mine], *(part.lower() for part in parts[mine:])])

    paths = [
        recording.cassette_path(nodeid, alias, tmp_path, folder)
        for nodeid in IDS
        for alias in ("m", "M", "m.json")
    ]
    assert len({folded(path) for path in paths}) == len(paths) == len(IDS) * 3
    # a folder of recordings is never named like a recording beside it
    for path in paths:
        assert not any(part.endswith(".json") for part in path.parts[:-1])


def test_plain_names_are_the_test_names_and_the_others_are_hashed(tmp_path):
    def name(nodeid: str) -> str:
        path = recording.cassette_path(nodeid, "sim-a", tmp_path, None)
        return str(path.relative_to(tmp_path))

    # what the example project and existing suites have: unchanged
    assert name("tests/test_x.py::test_y[sim-a-shipping]") == (
        "tests/llm_cassettes/sim-a/test_x/test_y[shipping].json"
    )
    assert name("tests/test_x.py::test_y[sim-a-run1of3]") == (
        "tests/llm_cassettes/sim-a/test_x/test_y[run1of3].json"
    )
    assert name("test_x.py::c::test_y[sim-a]") == "llm_cassettes/sim-a/test_x/c.test_y.json"
    hashed = re.compile(r"llm_cassettes/sim-a/test_x/(.*)#[0-9a-f]{16}\.json")
    for nodeid, readable in [
        ("test_x.py::TestChat::test_y[sim-a]", "TestChat.test_y"),
        ("test_x.py::a.b[sim-a]", "a.b"),  # a dot in a name (not Python's): not reversible
        ("test_x.py::" + "x" * 300, "x" * 150),
    ]:
        match = hashed.fullmatch(name(nodeid))
        assert match is not None, name(nodeid)
        assert match.group(1) == readable
    # the test name's parameters may have dots: only dots before them stand for ::
    assert name("test_x.py::test_y[sim-a-0.5]").endswith("/test_y[0.5].json")


def test_a_name_holding_a_key_in_any_form_is_hashed(tmp_path, monkeypatch):
    monkeypatch.setenv("FILES_TEST_KEY", KEY)
    redactor = Redactor(["FILES_TEST_KEY"])
    recorder = recording.Recorder("all", tmp_path, mask=redactor.data)
    spellings = forms_of(KEY)
    for spelling in spellings:
        for nodeid, bases in (
            (f"test_x.py::test_y[m-{spelling}]", (None, tmp_path / "c")),
            (f"test_x.py::test_y[m-{spelling[:12]}]", (None, tmp_path / "c")),  # cut short
            # a folder of modules is named by the plugin only under a cassettes folder
            (f"{spelling}/test_x.py::test_y[m]", (tmp_path / "c",)),
            (f"test_{spelling}.py::test_y[m]", (None, tmp_path / "c")),
        ):
            for base in bases:
                recorder.base = base
                shown = str(recorder.path_for(nodeid, "m").relative_to(tmp_path))
                assert "#" in shown
                for form in spellings:
                    assert form[:8] not in shown
                    assert form[-8:] not in shown
    recorder.base = None
    path = recorder.path_for(f"test_x.py::test_y[m-{KEY}]", "m")
    assert path.name.startswith("test_y[%2A%2A%2A]#")  # the readable part: masked


def test_a_module_outside_the_rootdir_gets_a_folder_of_its_own(tmp_path):
    for base, root in ((None, tmp_path / "llm_cassettes/m"), (tmp_path / "c", tmp_path / "c/m")):
        for nodeid in ("::test_x[m]", "../o/test_o.py::test_x[m]", "/abs/test_o.py::test_x[m]"):
            path = recording.cassette_path(nodeid, "m", tmp_path, base)
            assert path.parent.parent == root
            assert re.fullmatch("outside-rootdir#[0-9a-f]{16}", path.parent.name)
            assert path.name == "test_x.json"


def write_recording(path: Path, **changes: object) -> None:
    answer = {"status": 200, "content_type": "application/json", "json": {"ok": True}}
    document = {
        "version": 1,
        "test": "t.py::test_x[m]",
        "model": "m",
        "interactions": [{"request": {"method": "POST", "path": "/v1/x"}, "response": answer}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**document, **changes}))


@pytest.mark.timeout(30)
def test_hostile_files_at_a_recordings_path_are_errors_that_name_it(tmp_path):
    path = tmp_path / "r.json"
    fix = "; re-record it with --llm-record=all, or delete it"
    cases = {
        "deep": ("[" * 100_000 + "]" * 100_000, "is nested more than 200 levels deep"),
        "fifo": (None, "is not a regular file (a FIFO)"),
        "zero": (None, "is not a regular file (a device)"),
        "folder": (None, "is a folder, not a file"),
        "latin-1": (b'{"version": 1, "x": "\xe9"}', "is not UTF-8 text"),
        "huge": (b" " * (recording.MAX_BYTES + 1), "at most 67,108,864 are read"),
        "nan": ('{"version": 1, "interactions": [], "x": NaN}', "NaN is not a number JSON"),
    }
    for case, (content, said) in cases.items():
        if path.is_dir():
            path.rmdir()
        elif path.exists() or path.is_symlink():
            path.unlink()
        if case == "fifo":
            os.mkfifo(path)
        elif case == "zero":
            path.symlink_to("/dev/zero")
        elif case == "folder":
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(str(content))
        with pytest.raises(recording.RecordingError) as raised:
            recording._read(path)
        assert str(raised.value).startswith(f"the recording {path} ")
        assert said in str(raised.value)
        assert str(raised.value).endswith(fix)
    path.unlink()
    assert recording._read(path) is None  # no file: nothing recorded yet


def test_a_content_type_that_is_not_ascii_is_replayed(tmp_path):
    request = httpx2.Request("POST", "http://x/v1/chat")
    answer = {"status": 200, "content_type": "application/json; é=\ud800", "json": {"a": 1}}
    response = recording.replayed_response(httpx2, answer, request)
    assert response.json() == {"a": 1}
    assert response.headers["content-type"].startswith("application/json; ")


def content(events: list) -> str:
    return "".join(
        e["data"]["choices"][0]["delta"].get("content") or "" for e in events if "data" in e
    )


def chunk(text: str, index: int = 0) -> dict:
    return {"data": {"id": "chatcmpl-1", "choices": [{"index": index, "delta": {"content": text}}]}}


def test_a_key_split_across_stream_events_is_masked_in_each():
    forms = forms_of(KEY)
    pieces = ["the key is "] + [KEY[i : i + 4] for i in range(0, len(KEY), 4)] + [" ok"]
    events = [chunk(p) for p in pieces]
    masked = recording.mask_events(events, forms)
    joined = content(masked)
    assert joined.startswith("the key is ***")
    assert joined.endswith(" ok")
    for form in forms:
        assert form[:8] not in joined
        assert form[-8:] not in joined
    assert [e["data"]["id"] for e in masked] == ["chatcmpl-1"] * len(events)
    assert events == [chunk(p) for p in pieces]  # the events given are not changed
    # two choices streamed in turns: each choice's text is its own
    turns = [chunk(p, index) for p in pieces for index in (0, 1)]
    both = recording.mask_events(turns, forms)
    for index in (0, 1):
        text = content([e for e in both if e["data"]["choices"][0]["index"] == index])
        assert KEY[4:12] not in text
        assert text.startswith("the key is ***")
    # plain text events (no JSON), a key split across them
    raw = [{"data": p} for p in pieces]
    assert KEY[:8] not in "".join(e["data"] for e in recording.mask_events(raw, forms))
    # nothing to mask: the same list back
    clean = [chunk("hello"), chunk(" world")]
    assert recording.mask_events(clean, forms) is clean


def test_prune_takes_only_recordings_of_the_models_folder(tmp_path):
    path = tmp_path / "m/t/test_x.json"
    write_recording(path)
    assert recording._recording_of(path, "m")
    assert not recording._recording_of(path, "other")
    for changes in ({"version": 2}, {"model": "other"}, {"test": 1}, {"interactions": {}}):
        write_recording(path, **changes)
        assert not recording._recording_of(path, "m")
    path.write_text('{"expected": "Paris"}')
    assert not recording._recording_of(path, "m")
    path.unlink()
    os.mkfifo(path)
    assert not recording._recording_of(path, "m")
