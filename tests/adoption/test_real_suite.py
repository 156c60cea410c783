"""A suite written the way real ones are, adopted with one line (``usefixtures = llm_sdks``).

Its code under test caches one openai client for the session (built lazily), uses openai's
module-level client, a module-scoped fixture's client, a client cached on a long-lived
object built at import, an async client built at import; it hard-codes ``gpt-4o``, embeds
with ``text-embedding-3-small``, grades with a model id listed as auxiliary, has a test that
expects a wrong key to fail, and tests that never call a model. Across three simulated
models whose answers name themselves (each with a key of its own, which the simulator
checks), plain and with ``-n 3``: every answer comes from the model under test, the
embeddings and the grading calls are not rewritten and are counted apart, the wrong-key test
fails alone (no model is made unavailable), and the model-free tests are not in the rows.

Marked ``sdk``: CI runs these against the oldest and newest release of every SDK generation
(openai 1.x, 2.x, 3.x; anthropic 0.x, 1.x, 2.x), each in its own environment.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from .provider import Provider

pytestmark = pytest.mark.sdk

MODELS = ("sim-a", "sim-b", "sim-c")

CONFIG = """
[tool.llm-matrix]
default = ["sim-a", "sim-b", "sim-c"]

[tool.llm-matrix.models.sim-a]
provider = "simulator"
api_key_env = "SIM_A_KEY"
simulate = { api_key = "sk-test-4d8e1f90a2" }

[tool.llm-matrix.models.sim-b]
provider = "simulator"
api_key_env = "SIM_B_KEY"
simulate = { api_key = "sk-test-b77c3e51d6" }

[tool.llm-matrix.models.sim-c]
provider = "simulator"

[tool.llm-matrix.models.grader]
provider = "simulator"
model = "grader-model"

[tool.llm-matrix.models.embedder]
provider = "simulator"
model = "embedder-model"

[tool.llm-matrix.models.claude-a]
provider = "simulator"
api = "anthropic"
api_key_env = "CLAUDE_A_KEY"
simulate = { api_key = "sk-ant-test-9e02f4c6b1" }

[tool.llm-matrix.models.claude-b]
provider = "simulator"
api = "anthropic"

[tool.llm-matrix.models.claude-grader]
provider = "simulator"
api = "anthropic"
model = "claude-grader-model"

[tool.llm-matrix.auxiliary]
models = ["gpt-4o-grader"]

[tool.llm-matrix.auxiliary.routes]
gpt-4o-grader = "grader"
text-embedding-3-small = "embedder"
claude-grader = "claude-grader"

[tool.pytest.ini_options]
usefixtures = ["llm_sdks"]
asyncio_default_fixture_loop_scope = "function"
"""

#: The application: clients built once and kept, hard-coded model ids.
APP = """
import os

import openai
from openai import AsyncOpenAI, OpenAI

MODEL = "gpt-4o"
_client = None


def client():
    global _client
    if _client is None:  # built on first use, then kept for the whole session
        _client = OpenAI()
    return _client


def ask(question, via=None):
    answer = (via or client()).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}]
    )
    return answer.choices[0].message.content


def ask_module_client(question):
    answer = openai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}]
    )
    return answer.choices[0].message.content


def ask_streamed(question):
    parts = []
    stream = client().chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}], stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


def embed(texts):
    answer = client().embeddings.create(model="text-embedding-3-small", input=texts)
    return [item.embedding for item in answer.data]


def grade(answer):
    verdict = client().chat.completions.create(
        model="gpt-4o-grader", messages=[{"role": "user", "content": "Grade: " + answer}]
    )
    return verdict.choices[0].message.content


class Assistant:
    def __init__(self):
        self.client = OpenAI(api_key=os.environ["OPENAI_API_KEY"])

    def reply(self, question):
        return ask(question, via=self.client)


ASSISTANT = Assistant()  # built at import, before any test
ASYNC_CLIENT = AsyncOpenAI()  # ditto


async def ask_async(question):
    answer = await ASYNC_CLIENT.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}]
    )
    return answer.choices[0].message.content


def parse(text):
    key, _, value = text.partition("=")
    return {key.strip(): value.strip()}
"""

TESTS = """
import os

import openai
import pytest

import app


def under_test():
    return os.environ["LLM_MATRIX_MODEL"]  # the alias, which is also each model's id


@pytest.fixture(scope="module")
def module_client():
    return openai.OpenAI()


def test_session_cached_client():
    assert under_test() in app.ask("hello")


def test_module_level_client():
    assert under_test() in app.ask_module_client("hello")


def test_module_scoped_fixture(module_client):
    assert under_test() in app.ask("hello", via=module_client)


def test_client_on_a_long_lived_object():
    assert under_test() in app.ASSISTANT.reply("hello")


@pytest.mark.asyncio
async def test_async_client():
    assert under_test() in await app.ask_async("hello")


def test_streamed():
    assert under_test() in app.ask_streamed("hello")


def test_embeddings():
    assert len(app.embed(["a", "b"])[0]) > 0


def test_graded():
    answer = app.ask("hello")
    assert under_test() in answer
    assert "grader-model" in app.grade(answer)  # the grader's own answer


def test_a_wrong_key_is_refused():
    wrong = openai.OpenAI(api_key="sk-deliberately-wrong")
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


def test_parse():
    assert app.parse("a = 1") == {"a": "1"}


def test_parse_empty():
    assert app.parse("") == {"": ""}
"""

ANTHROPIC_TESTS = """
import os

import anthropic
import pytest

CLIENT = anthropic.Anthropic()  # at import, before any test
ASYNC_CLIENT = anthropic.AsyncAnthropic()


def under_test():
    return os.environ["LLM_MATRIX_MODEL"]


def ask(client, question, model="claude-3-5-sonnet-latest"):
    message = client.messages.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": question}]
    )
    return message.content[0].text


@pytest.fixture(scope="module")
def module_client():
    return anthropic.Anthropic()


def test_cached():
    assert under_test() in ask(CLIENT, "hello")


def test_module_scoped_fixture(module_client):
    assert under_test() in ask(module_client, "hello")


def test_streamed():
    with CLIENT.messages.stream(
        model="claude-3-5-sonnet-latest", max_tokens=64,
        messages=[{"role": "user", "content": "hello"}],
    ) as stream:
        assert under_test() in "".join(stream.text_stream)


@pytest.mark.asyncio
async def test_async():
    message = await ASYNC_CLIENT.messages.create(
        model="claude-3-5-sonnet-latest", max_tokens=64,
        messages=[{"role": "user", "content": "hello"}],
    )
    assert under_test() in message.content[0].text


def test_graded():
    answer = ask(CLIENT, "hello")
    assert under_test() in answer
    assert "claude-grader-model" in ask(CLIENT, "grade: " + answer, model="claude-grader")


def test_model_free():
    assert anthropic.__name__ == "anthropic"
"""


@pytest.fixture
def project(pytester, monkeypatch):
    pytester.makefile(".toml", pyproject=textwrap.dedent(CONFIG))
    monkeypatch.setenv("SIM_A_KEY", "sk-test-4d8e1f90a2")
    monkeypatch.setenv("SIM_B_KEY", "sk-test-b77c3e51d6")
    monkeypatch.setenv("CLAUDE_A_KEY", "sk-ant-test-9e02f4c6b1")
    monkeypatch.delenv("TEST_MODELS", raising=False)
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # the suite's own keys, as in a real project: they must never reach a model under test
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-projects-own-openai-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-the-projects-own-key")
    with Provider() as provider:  # where an unbound request would go
        monkeypatch.setenv("OPENAI_BASE_URL", provider.url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", provider.url.removesuffix("/v1"))
        yield pytester, provider


@pytest.mark.parametrize("workers", [[], ["-n", "3"]], ids=["plain", "n3"])
def test_an_openai_suite_adopted_in_one_line(project, workers):
    pytest.importorskip("openai")
    pytest.importorskip("pytest_asyncio")
    pytester, provider = project
    pytester.makepyfile(app=APP, test_app=TESTS)
    result = pytester.runpytest_subprocess(
        "--models=sim-a,sim-b,sim-c", "--llm-report=r.json", "-p", "no:randomly", *workers
    )
    outcomes = result.parseoutcomes()
    assert (outcomes.get("passed"), outcomes.get("failed")) == (30, 3), result.stdout.str()
    failed = {line.split(" ")[1] for line in result.outlines if line.startswith("FAILED ")}
    assert failed == {f"test_app.py::test_a_wrong_key_is_refused[{m}]" for m in MODELS}
    assert provider.requests == []  # nothing went where the clients were built to send it
    report = json.loads((pytester.path / "r.json").read_text())
    for name in MODELS:
        row = report["models"][name]
        # the model-free tests are not in the row (the embeddings test is one: it calls the
        # embedder only); the wrong-key test is its one failure
        assert (row["outcomes"]["passed"], row["outcomes"]["failed"]) == (7, 1), name
        assert row["pass_rate"] == pytest.approx(7 / 8), name
        # 8 calls of the model (grading and embeddings are not among them)
        assert row["requests"] == 8, (name, row["requests"])
        assert row["unavailable"] is None, name
    assert report["model_free"] == [
        "test_app.py::test_embeddings",
        "test_app.py::test_parse",
        "test_app.py::test_parse_empty",
    ]
    assert {t["test"] for t in report["tests"] if t.get("model_free")} == set(report["model_free"])
    auxiliary = report["auxiliary"]
    assert set(auxiliary) == {"grader", "embedder"}
    assert auxiliary["grader"]["requests"] == 3
    assert auxiliary["grader"]["sent_as"] == "gpt-4o-grader"
    assert auxiliary["embedder"]["requests"] == 3
    assert auxiliary["embedder"]["input_tokens"] > 0
    result.stdout.fnmatch_lines(
        [
            "model-free: 3 tests sent no request to the model under test on any model (9 runs*",
            "auxiliary requests (not in any model's row):",
        ]
    )
    result.stdout.fnmatch_lines_random(
        [
            "  grader (routed gpt-4o-grader): 3 requests, *",
            "  embedder (routed text-embedding-3-small): 3 requests, *",
        ]
    )


@pytest.mark.parametrize("workers", [[], ["-n", "3"]], ids=["plain", "n3"])
def test_an_anthropic_suite_adopted_in_one_line(project, workers):
    pytest.importorskip("anthropic")
    pytest.importorskip("pytest_asyncio")
    pytester, provider = project
    pytester.makepyfile(test_claude=ANTHROPIC_TESTS)
    result = pytester.runpytest_subprocess(
        "--models=claude-a,claude-b", "--llm-report=r.json", "-p", "no:randomly", *workers
    )
    result.assert_outcomes(passed=12)
    assert provider.requests == []
    report = json.loads((pytester.path / "r.json").read_text())
    for name in ("claude-a", "claude-b"):
        row = report["models"][name]
        assert row["outcomes"]["passed"] == 5, name
        assert row["requests"] == 5, name
    assert report["model_free"] == ["test_claude.py::test_model_free"]
    assert report["auxiliary"]["claude-grader"]["requests"] == 2
