"""Adopting an existing suite in one line: the code under test builds its own SDK clients
(``OpenAI()``, ``from openai import OpenAI``, ``openai.AsyncOpenAI()``) with hard-coded model
ids; ``usefixtures = llm_sdks`` runs it across the selected models, every generation call
going to the model under test through the plugin's transport. See test_real_suite.py for
clients that outlive a test, auxiliary calls and model-free tests."""

from __future__ import annotations

import json
import textwrap

import pytest

pytest.importorskip("openai")
pytest.importorskip("pytest_asyncio")

CONFIG = """
[tool.llm-matrix.simulator]
default_reply = "I can help with that."
rules = [
  { match = "(?i)refund", reply = "refund" },
  { system = "(?i)classifier", match = "(?i)package", reply = "shipping" },
]

[tool.llm-matrix.models.sim-a]
provider = "simulator"

[tool.llm-matrix.models.sim-b]
provider = "simulator"

[tool.llm-matrix.models.sim-c]
provider = "simulator"

[tool.pytest.ini_options]
asyncio_default_fixture_loop_scope = "function"
"""

#: The code under test, written as real projects write it.
SUPPORT = """
import openai
from openai import OpenAI

MODEL = "gpt-4o"  # hard-coded, as suites do


def classify(message):
    client = OpenAI()  # built inside the code under test, from the environment
    answer = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are a classifier."},
            {"role": "user", "content": message},
        ],
    )
    return answer.choices[0].message.content


def stream_reply(message):
    client = openai.OpenAI(api_key="sk-from-the-project")
    parts = []
    with client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": message}], stream=True
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


async def reply_async(message):
    client = openai.AsyncOpenAI()
    async with client:
        answer = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": message}]
        )
    return answer.choices[0].message.content
"""

TESTS = """
import pytest

from support import classify, reply_async, stream_reply


def test_refund():
    assert classify("I want a refund") == "refund"


def test_shipping():
    assert classify("Where is my package?") == "shipping"


def test_streamed():
    assert stream_reply("hello") == "I can help with that."


@pytest.mark.asyncio
async def test_async():
    assert await reply_async("a refund please") == "refund"
"""


def with_claude(pytester) -> None:
    """The project's config, plus a simulated model that speaks the Anthropic API."""
    pytester.makefile(
        ".toml",
        pyproject=textwrap.dedent(CONFIG)
        + '\n[tool.llm-matrix.models.claude-sim]\nprovider = "simulator"\napi = "anthropic"\n',
    )


@pytest.mark.parametrize("workers", [[], ["-n", "3"]], ids=["n0", "n3"])
def test_an_existing_suite_runs_across_models_with_one_line(pytester, monkeypatch, workers):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    pytester.makefile(".toml", pyproject=textwrap.dedent(CONFIG))
    pytester.makepyfile(support=SUPPORT, test_support=TESTS)
    # without the line: no model test, and the clients go nowhere the plugin knows
    before = pytester.runpytest_subprocess("--models=all", "-p", "no:randomly")
    assert "llm-matrix: 3 models" not in before.stdout.str()
    # the one line
    path = pytester.path / "pyproject.toml"
    path.write_text(path.read_text().rstrip() + '\nusefixtures = ["llm_sdks"]\n')
    result = pytester.runpytest_subprocess(
        "--models=all", "-p", "no:randomly", "--llm-report=r.json", *workers
    )
    result.assert_outcomes(passed=12)
    report = json.loads((pytester.path / "r.json").read_text())
    # every request reached the model under test and is counted in its row
    assert {name: m["requests"] for name, m in report["models"].items()} == {
        "sim-a": 4,
        "sim-b": 4,
        "sim-c": 4,
    }
    ids = sorted(t["nodeid"].split("::")[1] for t in report["tests"])
    assert ids[:3] == ["test_async[sim-a]", "test_async[sim-b]", "test_async[sim-c]"]


def test_the_option_binds_clients_in_tests_that_are_model_tests(pytester, monkeypatch):
    """--llm-patch-sdks binds for tests that already use a model fixture; a plain test stays
    single and unbound; a model that speaks the other API says so."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-outside")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with_claude(pytester)
    pytester.makepyfile(
        """
        import openai

        from pytest_llm_matrix.config.options import SETTINGS_KEY

        def test_model(llm_model, request):
            client = openai.OpenAI()
            assert client.base_url.host == "api.openai.com"  # as built: bound per request
            if not request.config.stash[SETTINGS_KEY].patch_sdks:
                return
            answer = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "refund"}])
            assert answer.choices[0].message.content == "refund"

        def test_plain():
            assert openai.OpenAI().base_url.host == "api.openai.com"
        """
    )
    bound = pytester.runpytest_subprocess("--models=sim-a", "--llm-patch-sdks")
    bound.assert_outcomes(passed=2)
    unbound = pytester.runpytest_subprocess("--models=sim-a")
    unbound.assert_outcomes(passed=2)
    other_api = pytester.runpytest_subprocess("--models=claude-sim", "-o", "llm_patch_sdks=true")
    other_api.assert_outcomes(passed=1, failed=1)
    other_api.stdout.fnmatch_lines(
        [
            "*claude-sim speaks the anthropic API, but the code under test sent POST "
            "/chat/completions through an openai.OpenAI, a client of the openai API; run this "
            "test on openai-API models only*"
        ]
    )


def test_anthropic_clients_built_by_the_code_are_bound_too(pytester, monkeypatch):
    pytest.importorskip("anthropic")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with_claude(pytester)
    pytester.makepyfile(
        """
        import pytest
        from anthropic import Anthropic, AsyncAnthropic

        pytestmark = pytest.mark.usefixtures("llm_sdks")

        def test_sync():
            message = Anthropic().messages.create(
                model="claude-3-5-sonnet-latest", max_tokens=50,
                messages=[{"role": "user", "content": "a refund"}])
            assert message.content[0].text == "refund"

        @pytest.mark.asyncio
        async def test_async():
            async with AsyncAnthropic() as client:
                message = await client.messages.create(
                    model="claude-3-5-sonnet-latest", max_tokens=50,
                    messages=[{"role": "user", "content": "a refund"}])
            assert message.content[0].text == "refund"
        """
    )
    result = pytester.runpytest_subprocess("--models=claude-sim", "--llm-report=r.json")
    result.assert_outcomes(passed=2)
    models = json.loads((pytester.path / "r.json").read_text())["models"]
    assert models["claude-sim"]["requests"] == 2
