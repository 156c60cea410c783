"""The one reader of the JSON files the plugin reads back: whatever is at the path, it ends
promptly with the document or an error naming the file and the cause."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pytest_llm_matrix.config.jsonfile import JSONFileError, parse_json, read_json, writable


def read(path: Path, max_bytes: int = 1000, max_depth: int = 50) -> object:
    return read_json(path, what="the recording", max_bytes=max_bytes, max_depth=max_depth)


def test_a_document_is_read(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"a": [1, 2.5, "é", null, true]}', encoding="utf-8")
    assert read(path) == {"a": [1, 2.5, "é", None, True]}


def test_a_missing_file_is_for_the_caller_to_judge(tmp_path):
    with pytest.raises(FileNotFoundError):
        read(tmp_path / "none.json")


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    path = tmp_path / "fifo.json"
    os.mkfifo(path)
    with pytest.raises(
        JSONFileError, match=r"the recording .*fifo\.json is not a regular file \(a FIFO\)"
    ):
        read(path)


@pytest.mark.timeout(20)
@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_a_symlink_to_an_endless_device_is_refused(tmp_path):
    path = tmp_path / "zero.json"
    path.symlink_to("/dev/zero")
    with pytest.raises(JSONFileError, match=r"zero\.json is not a regular file \(a device\)"):
        read(path)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(JSONFileError, match="is a folder, not a file"):
        read(tmp_path)


def test_a_file_over_the_cap_is_not_read(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + "1," * 600 + "1]")
    with pytest.raises(JSONFileError, match=r"big\.json is 1,203 bytes; at most 1,000 are read"):
        read(path)


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b'{"a": "\xff"}', r"is not UTF-8 text \(byte 7: invalid start byte\)"),
        (b'{"a": NaN}', r"is not JSON \(NaN is not a number JSON allows"),
        (b'{"a": -Infinity}', r"is not JSON \(-Infinity is not a number JSON allows"),
        (b'{"a": ', r"is not JSON \(Expecting value"),
        (b"", r"is not JSON \(Expecting value"),
        (b"[" * 51 + b"]" * 51, r"is nested more than 50 levels deep"),
        (b'{"a":' * 51 + b"1" + b"}" * 51, r"is nested more than 50 levels deep"),
    ],
    ids=["not-utf8", "nan", "infinity", "truncated", "empty", "deep-lists", "deep-objects"],
)
def test_bad_content_is_named(tmp_path, content, cause):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(JSONFileError, match=rf"the recording .*bad\.json {cause}"):
        read(path)


def test_nesting_at_the_cap_is_read(tmp_path):
    path = tmp_path / "deep.json"
    path.write_bytes(b"[" * 50 + b"]" * 50)
    assert read(path) is not None


def test_nesting_past_the_interpreters_limit_is_an_error_not_a_recursion_error(tmp_path):
    path = tmp_path / "deeper.json"
    depth = sys.getrecursionlimit() * 100
    path.write_bytes(b"[" * depth + b"]" * depth)
    with pytest.raises(JSONFileError, match="is nested more than 50 levels deep"):
        read(path, max_bytes=depth * 2)


def test_text_is_checked_as_a_file_is():
    with pytest.raises(JSONFileError, match=r"^the report x\.json is not JSON"):
        parse_json("{", "the report x.json")
    assert parse_json(b'{"a": 1}', "here") == {"a": 1}


def test_nan_and_infinity_only_when_asked():
    assert parse_json("[NaN, -Infinity]", "here", constants=True)[1] == float("-inf")


def test_a_key_twice_in_one_object_is_refused_only_when_asked(tmp_path):
    """JSON allows it, Python keeps the last value: a reader that adds up what it reads
    asks for every key once (a report with a model twice would lose one)."""
    text = '{"models": {"m1": {"runs": 1}, "m2": [{"a": 1}], "m1": {"runs": 2}}}'
    assert parse_json(text, "here") == {"models": {"m1": {"runs": 2}, "m2": [{"a": 1}]}}
    with pytest.raises(
        JSONFileError, match=r"^the report x\.json has the key 'm1' twice in one object; "
    ):
        parse_json(text, "the report x.json", unique_keys=True)
    nested = '[{"b": 1, "c": {"a": 1, "a": 1}}]'  # deep in a list, even with the same value
    with pytest.raises(JSONFileError, match=r"^here has the key 'a' twice"):
        parse_json(nested, "here", unique_keys=True)
    path = tmp_path / "twice.json"
    path.write_text('{"' + "k" * 100 + '": 1, "' + "k" * 100 + '": 2}')
    with pytest.raises(JSONFileError, match=r"twice\.json has the key 'k{47}\.\.\.k{7}' twice"):
        read_json(path, what="the report", max_bytes=1000, unique_keys=True)
    assert parse_json('{"a": {"a": 1}, "b": {"a": 2}}', "here", unique_keys=True) == {
        "a": {"a": 1},
        "b": {"a": 2},
    }  # the same key in two objects is no key twice


def test_a_lone_surrogate_is_read_and_made_writable():
    document = parse_json('{"\\udc00": ["x", "\\ud800"], "ok": "\\ud83d\\ude00"}', "here")
    assert writable(document) == {"\\udc00": ["x", "\\ud800"], "ok": "\U0001f600"}
    assert writable(["plain", 1]) == ["plain", 1]


def test_depth_is_measured_in_memory_that_grows_with_the_depth_only(tmp_path):
    path = tmp_path / "wide.json"
    path.write_text("[" + ",".join(["{}"] * 200_000) + "]")
    assert len(read(path, max_bytes=10**7)) == 200_000
