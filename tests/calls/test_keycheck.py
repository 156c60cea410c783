"""Keys checked up front: real sessions against the real simulator (and hostile servers of
the test's own), the first-request gate as the fallback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pytest_llm_matrix.calls.keycheck import (
    UNKNOWN,
    UNLISTED,
    VERIFIED,
    KeyChecks,
    _listed_ids,
    check,
    listing_url,
)
from pytest_llm_matrix.calls.limits import FileCoordinator
from pytest_llm_matrix.config.models import Model

from ..adoption import provider

KEY = "sk-check-0123456789abcdef"

CONFIG = """
[tool.llm-matrix.models.keyed]
provider = "openai-compatible"
base_url = "{url}/v1"
model = "keyed"
api_key_env = "CHECK_TEST_KEY"
{extra}
"""

FOUR_TESTS = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_answer(llm, n):
    assert llm.complete("hi") == "ok"
"""


@pytest.fixture
def keyed(pytester, write_config, simulator, monkeypatch):
    """A project whose keyed model answers from a simulator that checks its key."""
    monkeypatch.setenv("CHECK_TEST_KEY", KEY)

    def make(latency: float = 0.0, listing: bool = True, extra: str = "") -> object:
        sim = simulator(
            {
                "default_reply": "ok",
                "list_models": listing,
                "models": {
                    "keyed": {"api_key": KEY, "latency": latency},
                    "keyed-mini": {"api_key": KEY},
                    "other": {"api_key": "sk-another-key-000000"},
                },
            }
        )
        write_config(CONFIG.format(url=sim.url, extra=extra))
        pytester.makepyfile(test_keyed=FOUR_TESTS)
        return sim

    return make


@pytest.mark.parametrize("check_keys", ["on", "off"])
def test_a_verified_key_lets_every_worker_start_at_once(pytester, keyed, check_keys):
    # 4 workers, 4 tests of one keyed model: checked up front, all 4 requests are in flight
    # together; through the first-request gate, the first goes alone, then the other 3
    sim = keyed(latency=2.0)
    result = pytester.runpytest_subprocess(
        "-n", "4", "-p", "no:randomly", f"--llm-check-keys={check_keys}"
    )
    result.assert_outcomes(passed=4)
    in_flight = sim.stats()["max_in_flight_by_model"]["keyed"]
    if check_keys == "on":
        assert in_flight == 4
        result.stdout.fnmatch_lines(
            [
                "llm-matrix: checking the keys of keyed in the background (--llm-check-keys)",
                "llm-matrix: keys checked in *s: keyed verified",
            ]
        )
    else:
        assert in_flight == 3
        assert "keys checked" not in result.stdout.str()


def test_an_id_the_listing_lacks_is_named_with_the_closest(pytester, keyed):
    sim = keyed()
    config = (pytester.path / "pyproject.toml").read_text()
    (pytester.path / "pyproject.toml").write_text(config.replace('"keyed"', '"keyd"', 1))
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.stdout.fnmatch_lines(
        [
            "llm-matrix: keyed: model id 'keyd' is not among the 2 models this key can use; "
            "closest: keyed",
        ]
    )
    # not verified: the gate lets one request find the model missing
    result.assert_outcomes(failed=1, skipped=3)
    assert sim.stats()["requests"] == {"keyd": 1}
    strict = pytester.runpytest_subprocess("-p", "no:randomly", "--llm-strict")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR
    strict.stderr.fnmatch_lines(
        ["ERROR: --llm-strict: keyed: model id 'keyd' is not among the 2 models this key *"]
    )
    assert sim.stats()["requests"] == {"keyd": 1}  # the strict run sent nothing


class _SlowListing(provider.Handler):
    """A provider whose listing never comes (until the test ends); its chat answers come
    at once."""

    release = threading.Event()

    def do_GET(self) -> None:
        self.server.owner.requests.append({"method": "GET"})  # type: ignore[attr-defined]
        self.release.wait(60)
        self.close_connection = True


@pytest.fixture
def slow_listing():
    """The base URL of a provider whose listing never comes, and the provider."""
    _SlowListing.release.clear()
    with provider.Provider(_SlowListing) as server:
        yield server.url.removesuffix("/v1"), server
        _SlowListing.release.set()


def test_a_listing_that_never_comes_delays_tests_no_longer_than_the_check(
    pytester, write_config, monkeypatch, slow_listing
):
    monkeypatch.setenv("CHECK_TEST_KEY", KEY)
    url, server = slow_listing
    write_config(CONFIG.format(url=url, extra=""))
    pytester.makepyfile(test_keyed=FOUR_TESTS.replace('== "ok"', '== "from the real provider"'))
    started = time.monotonic()
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly")
    took = time.monotonic() - started
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["llm-matrix: keyed: key not checked (no answer within 5 s); its first request checks it"]
    )
    assert [r["method"] for r in server.requests].count("GET") == 1
    assert took < 20  # the check's 5 s, start-up, and 4 instant answers: never a hang


def test_a_replay_checks_no_key(pytester, keyed):
    sim = keyed()
    pytester.runpytest_subprocess("--llm-record=all").assert_outcomes(passed=4)
    before = sim.stats()["statuses"]
    result = pytester.runpytest_subprocess("--llm-record=replay")
    result.assert_outcomes(passed=4)
    assert sim.stats()["statuses"] == before  # nothing reached the server, no listing either
    assert "checking the keys" not in result.stdout.str()


def test_the_check_is_turned_off_by_ini_and_config_and_bad_values_say_the_choices(pytester, keyed):
    keyed()
    path = pytester.path / "pyproject.toml"
    config = path.read_text().rstrip("\n") + "\n"
    path.write_text(config + 'llm_check_keys = "off"\n')
    assert "checking the keys" not in pytester.runpytest_subprocess().stdout.str()
    path.write_text(
        config.replace(
            "[tool.llm-matrix.models.keyed]",
            "[tool.llm-matrix]\ncheck_keys = false\n[tool.llm-matrix.models.keyed]",
        )
    )
    assert "checking the keys" not in pytester.runpytest_subprocess().stdout.str()
    path.write_text(config + 'llm_check_keys = "maybe"\n')
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*llm_check_keys*expects one of 'on' | 'off', got 'maybe'"])
    path.write_text(
        config.replace(
            "[tool.llm-matrix.models.keyed]",
            '[tool.llm-matrix]\ncheck_keys = "no"\n[tool.llm-matrix.models.keyed]',
        )
    )
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*setting 'check_keys': expected true or false, got 'no'*"])
    path.write_text(config)
    result = pytester.runpytest_subprocess("--llm-check-keys=maybe")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--llm-check-keys: invalid choice: 'maybe' (choose from 'on', 'off')"]
    )


def test_a_refused_key_fails_the_first_adopted_test_that_calls_the_model(
    pytester, keyed, monkeypatch
):
    """A suite adopted in one line: its tests that never call the model run as they are
    (model-free); the first that calls it fails with the key check's reason, counted on the
    model; the others are skipped; nothing is sent."""
    sim = keyed()
    monkeypatch.setenv("CHECK_TEST_KEY", "sk-wrong-0000000000000")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-suites-own-000000")
    pytester.makepyfile(
        test_keyed="""
        import openai

        client = openai.OpenAI()  # built once, cached by the suite

        def test_a_no_model():
            assert 1 + 1 == 2

        def chat():
            message = {"role": "user", "content": "hi"}
            client.chat.completions.create(model="gpt-4o", messages=[message])

        def test_b_chat():
            chat()

        def test_c_chat():
            chat()
        """
    )
    path = pytester.path / "pyproject.toml"  # the one line
    path.write_text(path.read_text().rstrip("\n") + '\nusefixtures = ["llm_sdks"]\n')
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-rA")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "keyed *0 *1 *0 *1 *0.0%*",  # the failure counted on the model
            "FAILED test_keyed.py::test_b_chat[[]keyed[]] - Failed: keyed is unavailable: *",
        ]
    )
    assert "model-free tests failed" not in result.stdout.str()
    assert sim.stats()["requests"] == {}


def test_an_anthropic_key_is_checked_on_its_listing(pytester, write_config, simulator, monkeypatch):
    monkeypatch.setenv("CHECK_TEST_KEY", KEY)
    sim = simulator({"default_reply": "ok", "models": {"claude-x": {"api_key": KEY}}})
    write_config(
        f'[tool.llm-matrix.models.claude]\nprovider = "anthropic"\nbase_url = "{sim.url}"\n'
        'model = "claude-x"\napi_key_env = "CHECK_TEST_KEY"\n'
    )
    pytester.makepyfile(test_keyed=FOUR_TESTS)
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["llm-matrix: keys checked in *s: claude verified"])


# -- the check on its own ----------------------------------------------------------------


def model(url: str, name: str = "m", api: str = "openai", model_id: str = "m") -> Model:
    return Model(
        name, "openai-compatible", model_id, api, base_url=url, api_key_env="CHECK_TEST_KEY"
    )


def test_listing_urls():
    assert listing_url(model("http://h/v1/")) == "http://h/v1/models"
    assert listing_url(model("http://h", api="anthropic")) == "http://h/v1/models?limit=1000"


@pytest.mark.parametrize(
    ("data", "ids"),
    [
        ({"data": [{"id": "a"}, {"id": 3}, "x", {"name": "b"}]}, ["a", "b"]),
        ({"models": [{"name": "llama3:latest"}]}, ["llama3:latest"]),  # Ollama's own
        ({"data": [{"id": "a"}], "has_more": True}, None),  # a page: nothing concluded
        ({"data": "a"}, None),
        ([1, 2], None),
        ("text", None),
    ],
)
def test_listed_ids(data, ids):
    assert _listed_ids(data) == ids


class _Answer(BaseHTTPRequestHandler):
    """Answers every listing the same (a 2xx only to a request with a key, unless open),
    after ``delay`` seconds."""

    protocol_version = "HTTP/1.1"
    status = 200
    body = b""
    kind = ""
    open = False
    delay = 0.0

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(self.delay)
        keyed = "authorization" in self.headers or "x-api-key" in self.headers
        status, body = self.status, self.body
        if status < 300 and not keyed and not self.open:
            status, body = 401, b'{"error": {"message": "no key"}}'
        self.send_response(status)
        if self.kind:
            self.send_header("content-type", self.kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def answering():
    servers = []

    def serve(status: int, body: bytes, **knobs: object) -> str:
        handler = type("Handler", (_Answer,), {"status": status, "body": body, **knobs})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "state", "detail"),
    [
        (200, b'{"data": [{"id": "m"}]}', VERIFIED, ""),
        (200, b'{"data": []}', VERIFIED, ""),  # an empty listing says nothing of the id
        (200, b'{"data": [{"id": "n"}]}', UNLISTED, ""),
        (200, b"[" * 100_000 + b"]" * 100_000, UNKNOWN, "not a model listing"),  # too deep
        (200, b"<html>sign in</html>", UNKNOWN, "HTTP 200, not a model listing"),
        (200, b"<html>" + b"x" * (17 * 2**20), UNKNOWN, "not a model listing"),  # over the cap
        (404, b'{"error": {"message": "Invalid URL (GET /v1/models)"}}', UNKNOWN, "HTTP 404"),
        (500, b"oops", UNKNOWN, "HTTP 500 oops"),
        (401, b'{"error": {"message": "bad key", "code": "invalid_api_key"}}', "unavailable", ""),
        # a key that may chat but not list (OpenAI's restricted keys): the gate decides
        (403, b'{"error": {"message": "missing scope api.model.read"}}', UNKNOWN, "HTTP 403"),
        (402, b"pay", UNKNOWN, "HTTP 402 pay"),
        (429, b'{"error": {"code": "insufficient_quota", "message": "q"}}', "unavailable", ""),
        (429, b'{"error": {"code": "rate_limit", "message": "slow down"}}', UNKNOWN, ""),
        # LiteLLM's proxy without a database refuses every key but its master key so
        (
            400,
            b'{"error": {"message": "No connected db.", "type": "no_db_connection", '
            b'"param": null, "code": "400"}}',
            "unavailable",
            "HTTP 400 no_db_connection: No connected db.",
        ),
        (400, b'{"error": {"message": "bad listing query", "code": "400"}}', UNKNOWN, ""),
    ],
)
def test_what_an_answer_tells(answering, monkeypatch, status, body, state, detail):
    monkeypatch.setenv("CHECK_TEST_KEY", KEY)
    outcome = check([model(answering(status, body) + "/v1")], timeout=5)["m"]
    assert outcome.state == state
    assert detail in outcome.detail


def test_a_listing_that_needs_no_key_proves_nothing_about_one(answering, monkeypatch):
    # OpenRouter's listing is public, as a local server's is: a wrong key would pass it
    monkeypatch.setenv("CHECK_TEST_KEY", KEY)
    url = answering(200, b'{"data": [{"id": "m"}]}', open=True) + "/v1"
    outcome = check([model(url)], timeout=5)["m"]
    assert (outcome.state, outcome.detail) == (UNKNOWN, "its listing answers without a key too")
    unlisted = check([model(url, model_id="other")], timeout=5)["m"]
    assert unlisted.state == UNLISTED  # what the listing lacks is still worth saying


def test_the_check_takes_no_proxy_as_the_requests_take_none(answering, monkeypatch):
    monkeypatch.setenv("CHECK_TEST_KEY", KEY)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # a dead proxy
    outcome = check([model(answering(200, b'{"data": [{"id": "m"}]}') + "/v1")], timeout=5)
    assert outcome["m"].state == VERIFIED


def test_an_echoed_key_is_not_in_the_outcome_nor_in_the_closest_ids(answering, monkeypatch):
    monkeypatch.setenv("CHECK_TEST_KEY", KEY)
    body = json.dumps({"error": {"message": "x" * 280 + f"key {KEY} refused"}}).encode()
    outcome = check([model(answering(401, body) + "/v1")], timeout=5)["m"]
    assert "x" * 200 in outcome.detail
    assert KEY[:10] not in outcome.detail  # masked before it was cut to 300 characters
    for wanted, listed, shown in (
        (f"m-{KEY[:-2]}", f"m-{KEY}", "closest: m-***"),  # a key echoed in an id
        ("m-x", "m-x\x1b[2K", "closest: m-x\\x1b[2K"),  # a terminal escape
    ):
        url = answering(200, json.dumps({"data": [{"id": listed}]}).encode()) + "/v1"
        checks = KeyChecks([model(url, model_id=wanted)], lambda: FileCoordinator(Path("."), None))
        checks.outcomes = check(list(checks.models.values()), timeout=5)
        checks._said = True
        text = "\n".join(checks.lines())
        assert shown in text
        assert KEY[6:20] not in text
        assert "\x1b" not in text


def test_an_answer_after_the_time_limit_is_not_acted_on(answering, monkeypatch, tmp_path):
    monkeypatch.setenv("CHECK_TEST_KEY", KEY)
    url = answering(401, b'{"error": {"message": "bad key"}}', delay=1.5) + "/v1"
    coordinator = FileCoordinator(tmp_path, None)
    checks = KeyChecks([model(url)], lambda: coordinator, timeout=0.5)
    started = time.monotonic()
    checks.start()
    assert coordinator.checking("m")
    outcome = checks.wait()["m"]
    assert time.monotonic() - started < 1.4  # the limit, not the answer
    assert (outcome.state, outcome.detail) == (UNKNOWN, "no answer within 0.5 s")
    assert not coordinator.checking("m")  # nobody waits for it any more
    for thread in checks._threads:
        thread.join(5)
    assert coordinator.unavailable("m") is None  # the 401 came too late to count
    assert checks.wait()["m"] == outcome


def test_a_coordinator_that_refuses_the_marks_leaves_every_model_to_its_gate(monkeypatch):
    monkeypatch.setenv("CHECK_TEST_KEY", KEY)

    class Refusing:
        def start_check(self, model: str, seconds: float) -> None:
            raise OSError("OOM command not allowed when used memory > 'maxmemory'")

    checks = KeyChecks([model("http://127.0.0.1:9/v1")], lambda: Refusing())  # type: ignore[arg-type, return-value]
    checks.start()
    assert checks._threads == []
    assert checks.wait()["m"].state == UNKNOWN
    assert "OSError: OOM command not allowed" in checks.lines()[1]


def test_a_run_without_model_tests_waits_for_no_check(
    pytester, write_config, monkeypatch, slow_listing
):
    monkeypatch.setenv("CHECK_TEST_KEY", KEY)
    write_config(CONFIG.format(url=slow_listing[0], extra=""))
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    started = time.monotonic()
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert time.monotonic() - started < 4.5  # not the listing's 5 s
    assert "key not checked" not in result.stdout.str()


def test_a_check_mark_expires_and_ends(tmp_path):
    coordinator = FileCoordinator(tmp_path, None)
    assert not coordinator.checking("m")
    coordinator.start_check("m", 30)
    assert coordinator.checking("m")
    coordinator.end_check("m")
    assert not coordinator.checking("m")
    coordinator.end_check("m")  # twice: no error
    coordinator.start_check("m", 0.05)
    time.sleep(0.1)
    assert not coordinator.checking("m")  # a checker that died leaves no wait behind
    (tmp_path / "model-m.checking").write_text("nan")
    assert not coordinator.checking("m")
