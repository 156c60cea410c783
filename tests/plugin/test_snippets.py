"""Every code block of the README and the docs is run by a test, or marked with why not.

See ``tests/snippets.py`` for the markers. This module checks the inventory and runs the
blocks that no other module of the suite runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.snippets import ROOT, assert_shows, blocks, parse, snippet

#: In-process runs: pytest-asyncio's loop scope set (as the suite's own configs do), so that
#: it warns of nothing the test did not ask for; pytest-randomly off.
QUIET = ("-o", "asyncio_default_fixture_loop_scope=function", "-p", "no:randomly")
SNIPPET_CALL = re.compile(r"""\bsnippet\(\s*["']([\w.-]+)["']""")


def names_read_by_tests() -> tuple[set[str], set[str]]:
    """(the names tests read with the snippet function and a literal name, every string literal of a
    test module that reads snippets: names given to a parametrized test count too)."""
    called: set[str] = set()
    literals: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "snippet(" in text:
            called.update(SNIPPET_CALL.findall(text))
            literals.update(re.findall(r"""["']([\w.-]+)["']""", text))
    return called, literals


def test_every_block_is_run_by_a_test_or_says_why_not():
    unmarked = [
        f"{block.where} ({block.language or 'no language'}: {block.text.splitlines()[0][:60]!r})"
        for block in blocks()
        if block.name is None and block.reason is None
    ]
    assert not unmarked, (
        "code blocks with no marker on the line before them: put <!-- snippet: NAME --> "
        "and read it in a test with the snippet function, or <!-- not run: REASON -->:\n  "
        + "\n  ".join(unmarked)
    )


def test_every_snippet_name_is_read_by_a_test_and_used_once():
    named = [block.name for block in blocks() if block.name]
    assert len(named) == len(set(named)), sorted(n for n in named if named.count(n) > 1)
    called, literals = names_read_by_tests()
    unread = sorted(set(named) - called - literals)
    assert not unread, f"blocks marked as run by a test that no test reads: {unread}"
    missing = sorted(called - set(named))
    assert not missing, f"tests read snippets no block is marked with: {missing}"


def test_reasons_say_something():
    for block in blocks():
        if block.reason is not None:
            assert len(block.reason.split()) >= 4, f"{block.where}: say why it is not run"


def test_a_block_in_a_list_is_indented_as_the_site_needs():
    """Python-Markdown (the site) keeps a block in its list item only when it is indented
    by four spaces; at two, GitHub nests it but the site ends the list above it."""
    wrong = [block.where for block in blocks() if block.indent % 4]
    assert not wrong, f"indent these blocks (and their list item's lines) by 4: {wrong}"


def test_the_markers_are_read_as_written(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- snippet: one -->\n```toml\na = 1\n```\n\n- item\n\n"
        "  <!-- not run: needs a key we do not have -->\n  ```python\n  x = 1\n  ```\n\n"
        "```text\nno marker\n```\n"
    )
    one, two, three = parse(page)
    assert (one.name, one.reason, one.language, one.text) == ("one", None, "toml", "a = 1\n")
    assert (two.name, two.reason, two.text) == (None, "needs a key we do not have", "x = 1\n")
    assert (three.name, three.reason, three.line) == (None, None, 15)


# --- the first matrix: README, quickstart, index ------------------------------------------


def test_the_readme_quickstart_is_the_quickstart_page_s():
    assert snippet("readme-quickstart-config") == snippet("quickstart-config")
    assert snippet("readme-quickstart-tests") == snippet("quickstart-tests")
    assert snippet("index-summary") == snippet("readme-summary")


def test_the_quickstart_runs_as_written_and_prints_its_table(pytester, monkeypatch):
    """The quickstart's config and test file as they are: 4 passed, and the table the page
    shows (at the page's 100 columns)."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    pytester.makefile(".toml", pyproject=snippet("quickstart-config"))
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_capitals.py").write_text(snippet("quickstart-tests"))
    result = pytester.runpytest_subprocess("--models=all", "-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert_shows(snippet("quickstart-output"), result.stdout.str())


def test_a_real_model_beside_the_simulated_ones_is_skipped_without_its_key(pytester, monkeypatch):
    monkeypatch.delenv("TEST_MODELS", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = snippet("quickstart-config") + "\n" + snippet("quickstart-real-model")
    pytester.makefile(".toml", pyproject=config)
    pytester.makepyfile(test_capitals=snippet("quickstart-tests"))
    result = pytester.runpytest("--models=all", "-rs", *QUIET)
    result.assert_outcomes(passed=4, skipped=2)
    result.stdout.fnmatch_lines(["*gpt-4o-mini: OPENAI_API_KEY is not set*"])
    listed = pytester.runpytest("--llm-models", *QUIET)
    assert listed.ret == 0
    listed.stdout.fnmatch_lines(["gpt-4o-mini *openai *gpt-4o-mini *OPENAI_API_KEY not set"])


def test_ci_runs_the_readme_s_two_commands():
    """The README's two commands are CI's: .ci/run installs the project with the dev extras
    and runs the suite with the README's command, and runs the example project's commands
    as the README and the quickstart write them (tests/example_commands.py)."""
    ci = (ROOT / ".ci" / "run").read_text()
    install, run = snippet("readme-tests").strip().split(" && ")[2:]
    assert install == 'pip install -e ".[dev]"'
    assert 'python -m pip install --quiet -e ".[dev,docs]"' in ci  # (the docs extras too)
    assert f"\n{run} -p no:cacheprovider\n" in ci
    assert "python -m tests.example_commands" in ci
    assert (
        snippet("readme-try").strip().endswith("&& cd example_project && pytest --models=all -n 4")
    )


# --- writing tests -------------------------------------------------------------------------


def test_the_first_example_of_writing_tests_runs_as_written(pytester, monkeypatch):
    """writing-tests' config and tests, as they are: 9 passed (4 tests on two models, one
    narrowed to one), the async one through pytest-asyncio."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    pytester.makefile(".toml", pyproject=snippet("writing-config"))
    pytester.makepyfile(test_examples=snippet("writing-tests"))
    result = pytester.runpytest_subprocess("--models=all", "-p", "no:randomly")
    result.assert_outcomes(passed=9)


SIM = """
[tool.llm-matrix.models.sim]
provider = "simulator"

[tool.llm-matrix.simulator]
rules = [
  {{ match = "Say pong", reply = "pong" }},
  {{ match = "(?i)summarize", reply = "A short summary." }},
{rules}]
"""


def test_the_sdk_example_runs(pytester, monkeypatch):
    monkeypatch.delenv("TEST_MODELS", raising=False)
    pytester.makefile(".toml", pyproject=SIM.format(rules=""))
    pytester.makepyfile(test_sdk=snippet("writing-sdk"))
    pytester.runpytest(*QUIET).assert_outcomes(passed=1)


def test_the_snapshot_example_keeps_its_model_s_snapshot(pytester, monkeypatch):
    monkeypatch.delenv("TEST_MODELS", raising=False)
    pytester.makefile(".toml", pyproject=SIM.format(rules=""))
    pytester.makepyfile(test_summary=snippet("writing-snapshot"))
    pytester.runpytest_subprocess("--snapshot-update").assert_outcomes(passed=1)
    stored = pytester.path / "__snapshots_by_model__" / "sim" / "test_summary.ambr"
    assert "A short summary." in stored.read_text()
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_work_shared_by_a_module_s_tests_is_done_once_per_model(pytester, monkeypatch):
    """The example as written, with the two names it leaves to the reader (``pytest`` and
    ``DOCS``) defined above it: one request per document and model, whatever the tests."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    pytester.makefile(".toml", pyproject=SIM.format(rules=""))
    preamble = "import pytest\n\nDOCS = ['one', 'two']\n\n"
    more = "\n\ndef test_again(summaries):\n    assert summaries == ['A short summary.'] * 2\n"
    pytester.makepyfile(test_shared=preamble + snippet("writing-shared-work") + more)
    result = pytester.runpytest("--llm-report=report.json", *QUIET)
    result.assert_outcomes(passed=2)
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["models"]["sim"]["requests"] == 2


def test_the_repeat_example_stops_when_its_outcome_is_settled(pytester, monkeypatch):
    monkeypatch.delenv("TEST_MODELS", raising=False)
    pytester.makefile(".toml", pyproject=SIM.format(rules=""))
    pytester.makepyfile(test_tone="import pytest\n\n" + snippet("writing-repeats"))
    result = pytester.runpytest("-v", *QUIET)
    result.assert_outcomes(passed=1, skipped=4)  # 4 of 5 passed: the fifth is not needed
    result.stdout.fnmatch_lines(["*test_tone[[]sim-run4of5[]] PASSED 4/4, needs 4/5*"])


def test_the_judge_example_runs_with_the_judge_it_names(pytester, monkeypatch):
    """The judge config and test as written, with ``gpt-4o`` a simulated grader: a model
    whose answer offers a refund passes, one whose answer does not fails with the reason."""
    monkeypatch.delenv("TEST_MODELS", raising=False)
    config = (
        snippet("writing-judge-config")
        + """
[tool.llm-matrix.models.gpt-4o]
provider = "simulator"

[tool.llm-matrix.models.helpful]
provider = "simulator"

[tool.llm-matrix.models.vague]
provider = "simulator"
simulate = { wrong = ["(?i)damaged"], wrong_reply = "Sorry to hear that." }

[tool.llm-matrix.simulator]
rules = [
  { system = "grade", match = "(?s)grade:.*refund", json = { pass = true, reason = "ok" } },
  { system = "grade", match = "(?s)grade:", json = { pass = false, reason = "No refund." } },
  { match = "(?i)damaged", reply = "We will send a refund or a replacement." },
]
"""
    )
    pytester.makefile(".toml", pyproject=config)
    pytester.makepyfile(test_judged=snippet("writing-judge-test"))
    result = pytester.runpytest("--models=all", *QUIET)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: No refund.*", "*gpt-4o: 2 requests*"])


def test_a_documented_output_must_be_what_the_run_printed():
    printed = (
        "=== x ===\nsim-fast   2  0  100.0%  0.18s\nsim-slow   2  0  100.0%  1.01s\n"
        "== 4 passed in 1.3s ==\n"
    )
    table = "===== x =====\nsim-fast 2 0 100.0% 9.99s\nsim-slow 2 0 ...\n== 4 passed in 2s =="
    assert_shows(table, printed)
    assert_shows("===== x =====\n...\n== 4 passed in 2s ==", printed)  # lines left out
    for wrong in (
        "sim-fast 3 0 100.0% 0.18s",  # another number
        "sim-slow 2 0 100.0% 1.01s\nsim-fast 2 0 100.0% 0.18s",  # another order
        "===== x =====\nsim-fast 2 0 100.0% 9.99s\n== 4 passed in 2s ==",  # a row less
    ):
        with pytest.raises(AssertionError, match="which the run did not print"):
            assert_shows(wrong, printed)
    assert_shows("sim-fast 2 0 ...\n== 4 passed ...", printed, apart=True)  # messages apart
    assert_shows(
        "one message\n  wrapped over lines", "E one message wrapped over lines.", joined=True
    )
    with pytest.raises(AssertionError):
        assert_shows(
            "one message\n  wrapped badly", "E one message wrapped over lines.", joined=True
        )
    assert_shows("in /repo: 1.5s", ["in /tmp/x: 0.2s"], {"/tmp/x": "/repo"})
    with pytest.raises(AssertionError):
        assert_shows("in /repo", ["in /tmp/x"])


# --- configuring and listing models --------------------------------------------------------

KEYS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GROQ_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "LITELLM_KEY",
)


@pytest.fixture
def no_keys(monkeypatch):
    monkeypatch.delenv("TEST_MODELS", raising=False)
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)


def test_the_models_page_config_lists_as_the_selection_page_shows(pytester, no_keys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    pytester.makefile(".toml", pyproject=snippet("models-config"))
    command, *shown = snippet("selection-listing").splitlines()
    assert command == "$ pytest --llm-models --models=cheap,oss"
    result = pytester.runpytest(*command.split()[2:], *QUIET)
    assert result.ret == 0
    assert_shows("\n".join(shown), result.stdout.str())
    assert "sk-test-not-a-real-key" not in result.stdout.str()


def test_the_models_page_mistakes_are_the_errors_a_run_meets(pytester, no_keys):
    config = snippet("models-config")
    typo, nan = snippet("models-mistakes").strip().splitlines()
    for wrong, shown in (
        (config.replace("timeout = 60", "timout = 60"), typo),
        (config.replace("timeout = 60", "timeout = nan"), nan),
    ):
        pytester.makefile(".toml", pyproject=wrong)
        result = pytester.runpytest(*QUIET)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert_shows(shown, result.stderr.str())


@pytest.mark.parametrize("name", ["models-hook", "hook-pytest_llm_matrix_models"])
def test_the_model_hook_examples_register_their_model(pytester, no_keys, name):
    pytester.makeconftest(snippet(name))
    result = pytester.runpytest("--llm-models", *QUIET)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["llm-matrix: 1 model *", "local-llama *openai-compatible *llama3.2 *openai *local *"]
    )


def test_the_report_hook_example_edits_and_ships_the_report(pytester, no_keys, monkeypatch):
    monkeypatch.setenv("CI_BUILD_ID", "build-42")
    pytester.makefile(".toml", pyproject=SIM.format(rules=""))
    pytester.makeconftest(snippet("hook-pytest_llm_matrix_report"))
    pytester.makepyfile("def test_x(llm):\n    assert llm.complete('Say pong') == 'pong'\n")
    pytester.runpytest("--llm-report=report.json", *QUIET).assert_outcomes(passed=1)
    written = json.loads((pytester.path / "report.json").read_text())
    shipped = json.loads((pytester.path / "dashboard-upload.json").read_text())
    assert written["build"] == shipped["build"] == "build-42"


@pytest.mark.parametrize(
    ("name", "aliases"),
    [
        ("quickstart-real-model", ["gpt-4o-mini"]),
        (
            "models-config",
            ["gpt-4o-mini", "claude-haiku", "qwen3-32b", "llama-local", "azure-4o-mini"],
        ),
        ("gateways-litellm", ["gw-sonnet"]),
    ],
)
def test_a_config_of_the_docs_is_a_valid_config(pytester, no_keys, name, aliases):
    pytester.makefile(".toml", pyproject=snippet(name))
    result = pytester.runpytest("--llm-models", *QUIET)
    assert result.ret == 0, result.stderr.str()
    for alias in aliases:
        result.stdout.fnmatch_lines([f"{alias} *"])


# --- adopting a suite ----------------------------------------------------------------------

THREE_SIMS = """
[tool.llm-matrix.models.sim-a]
provider = "simulator"

[tool.llm-matrix.models.sim-b]
provider = "simulator"

[tool.llm-matrix.models.sim-c]
provider = "simulator"

[tool.llm-matrix.simulator]
default_reply = "This is {model}."
"""

#: Code under test as real suites write it: openai's module-level client, a hard-coded id.
BOT = """
import openai

def answer(question):
    reply = openai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content
"""


def test_one_ini_line_runs_a_suite_across_the_models(pytester, no_keys, monkeypatch):
    """The adoption page's one line, with a suite that uses openai's module-level client and
    hard-codes its model: each test runs on each model, answered by it; a test that calls no
    model is model-free, counted once under the table as the page shows."""
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-any-value")
    pytester.makefile(".toml", pyproject=THREE_SIMS + "\n" + snippet("adopting-usefixtures"))
    pytester.makepyfile(
        bot=BOT,
        test_bot=(
            "import pytest\nfrom bot import answer\nfrom pytest_llm_matrix import current_model\n\n"
            "def test_answer():\n    assert answer('hi') == f'This is {current_model()}.'\n\n"
            "@pytest.mark.parametrize('i', range(31))\ndef test_free(i):\n    pass\n"
        ),
    )
    result = pytester.runpytest("--models=all", *QUIET)
    result.assert_outcomes(passed=96)
    result.stdout.fnmatch_lines(["sim-a *1 *0 *0 *0 *100.0%*", "sim-c *1 *0 *0 *0 *100.0%*"])
    assert_shows(snippet("adopting-model-free"), result.stdout.str())


def test_llm_sdks_narrowed_by_paths_or_a_conftest(pytester, no_keys):
    """The two ways to narrow the route, as written: the ini's paths (a folder and a glob)
    and the autouse fixture of a folder's conftest.py; the other tests run once."""
    tests = "def test_x():\n    pass\n"
    for path in (
        "tests/llm/test_a.py",
        "tests/agents/test_run_e2e.py",
        "tests/agents/test_unit.py",
        "tests/rag/test_b.py",
        "tests/test_plain.py",
    ):
        (pytester.path / path).parent.mkdir(parents=True, exist_ok=True)
        (pytester.path / path).write_text(tests)
    pytester.makefile(".toml", pyproject=THREE_SIMS + "\n" + snippet("adopting-sdks-paths"))
    by_paths = pytester.runpytest("--collect-only", "-q", "--models=all", *QUIET)
    ids = [line for line in by_paths.outlines if "::" in line]
    assert sorted(ids) == sorted(
        [
            *(f"tests/llm/test_a.py::test_x[{m}]" for m in ("sim-a", "sim-b", "sim-c")),
            *(f"tests/agents/test_run_e2e.py::test_x[{m}]" for m in ("sim-a", "sim-b", "sim-c")),
            "tests/agents/test_unit.py::test_x",
            "tests/rag/test_b.py::test_x",
            "tests/test_plain.py::test_x",
        ]
    )
    conftest = snippet("adopting-conftest")
    assert conftest.startswith("# tests/llm/conftest.py\n")
    pytester.makefile(".toml", pyproject=THREE_SIMS)
    (pytester.path / "tests" / "rag" / "conftest.py").write_text(conftest)
    by_conftest = pytester.runpytest("--collect-only", "-q", "--models=all", *QUIET)
    ids = [line for line in by_conftest.outlines if "::" in line]
    assert [i for i in ids if "[" in i] == [
        f"tests/rag/test_b.py::test_x[{m}]" for m in ("sim-a", "sim-b", "sim-c")
    ]
    assert len(ids) == 7


def test_the_auxiliary_config_routes_its_ids(pytester, no_keys):
    config = (
        THREE_SIMS
        + """
[tool.llm-matrix.models.judge]
provider = "simulator"

[tool.llm-matrix.models.embedder]
provider = "simulator"
"""
        + snippet("adopting-auxiliary")
    )
    pytester.makefile(".toml", pyproject=config)
    result = pytester.runpytest("--llm-models", *QUIET)
    assert result.ret == 0, result.stderr.str()
    wrong = config.replace(
        '"text-embedding-3-small" = "embedder"', '"text-embedding-3-small" = "embeder"'
    )
    pytester.makefile(".toml", pyproject=wrong)
    assert pytester.runpytest("--llm-models", *QUIET).ret == pytest.ExitCode.USAGE_ERROR


# --- record and replay, baselines, merge: the commands as written, through bash ------------


def run(
    pytester: pytest.Pytester, command: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """A documented ``pytest ...`` or ``python -m pytest_llm_matrix merge ...`` command as
    written (its words as a shell splits them, a glob expanded as bash would), run in
    process for speed: (exit status, output)."""
    import glob
    import shlex

    from pytest_llm_matrix.__main__ import main as merge

    words = shlex.split(command.replace("\\\n", " "), comments=True)
    words = [w for word in words for w in (sorted(glob.glob(word)) if "*" in word else [word])]
    if words[0] == "pytest":
        result = pytester.runpytest(*words[1:], *QUIET)
        return int(result.ret), result.stdout.str() + result.stderr.str()
    assert words[:4] == ["python", "-m", "pytest_llm_matrix", "merge"], command
    capsys.readouterr()
    status = merge(words[3:])
    out, err = capsys.readouterr()
    return status, out + err


TWO_SIMS = """
[tool.llm-matrix.models.sim-a]
provider = "simulator"

[tool.llm-matrix.models.sim-b]
provider = "simulator"

[tool.llm-matrix.simulator]
default_reply = "ok"
"""


def test_the_four_recording_modes_as_written(pytester, no_keys, capsys):
    pytester.makefile(".toml", pyproject=TWO_SIMS)
    pytester.makepyfile(test_bot="def test_hi(llm):\n    assert llm.complete('hi') == 'ok'\n")
    new, replay, again, prune = snippet("record-modes").strip().splitlines()
    cassettes = pytester.path / "llm_cassettes"

    assert run(pytester, new, capsys)[0] == 0
    recorded = sorted(p.relative_to(cassettes).as_posix() for p in cassettes.rglob("*.json"))
    assert recorded == ["sim-a/test_bot/test_hi.json", "sim-b/test_bot/test_hi.json"]
    status, output = run(pytester, replay, capsys)
    assert status == 0
    assert "--llm-record=replay: 2 requests replayed, none sent" in output
    kept = cassettes / "sim-a/test_bot/test_hi.json"
    kept.write_text(kept.read_text().replace('"ok"', '"changed"'))
    assert run(pytester, replay, capsys)[0] == 1  # the recording is what a replay answers
    assert run(pytester, again, capsys)[0] == 0  # sent again, recorded again
    assert '"changed"' not in kept.read_text()
    stale = cassettes / "sim-a/test_bot/test_gone.json"
    stale.write_text(kept.read_text())
    status, output = run(pytester, prune, capsys)
    assert status == 0, output
    assert not stale.exists()
    assert kept.exists()


def test_a_replay_miss_says_what_the_page_says(pytester, no_keys):
    pytester.makefile(
        ".toml", pyproject='[tool.llm-matrix.models.gpt-4o-mini]\nprovider = "simulator"\n'
    )
    (pytester.path / "tests").mkdir()
    bot = pytester.path / "tests" / "test_bot.py"
    test = "def test_refund(llm):\n    llm.chat({prompt!r}, system='You are a support bot.')\n"
    bot.write_text(test.format(prompt="I want my money back"))
    pytester.runpytest("--llm-record=new", *QUIET).assert_outcomes(passed=1)
    bot.write_text(test.format(prompt="I want a refund"))
    result = pytester.runpytest("--llm-record=replay", *QUIET)
    result.assert_outcomes(failed=1)
    assert_shows(snippet("record-miss"), result.stdout.str(), joined=True)


def test_baselines_and_merges_as_written(pytester, no_keys, capsys):
    """The reports page's commands: a baseline from the last run and from a report; the
    merge of two jobs' reports into JSON and HTML; the merge judged with the gates."""
    pytester.makefile(".toml", pyproject=TWO_SIMS)
    pytester.makepyfile(test_bot="def test_hi(llm):\n    assert llm.complete('hi') == 'ok'\n")
    last, from_report = snippet("baseline-commands").strip().splitlines()

    status, output = run(pytester, last, capsys)  # no earlier run: a usage error saying so
    assert status == pytest.ExitCode.USAGE_ERROR
    assert "no earlier complete run of this selection" in output
    assert run(pytester, "pytest --models=all", capsys)[0] == 0
    status, output = run(pytester, last, capsys)
    assert status == 0
    assert "against the baseline: the last run of this selection" in output, output[-2000:]
    assert run(pytester, "pytest --models=all --llm-report=main-report.json", capsys)[0] == 0
    status, output = run(pytester, from_report, capsys)
    assert status == 0, output[-2000:]
    assert "against the baseline: main-report.json" in output

    (pytester.path / "reports").mkdir()
    for model in ("sim-a", "sim-b"):
        command = f"pytest --models={model} --llm-report=reports/{model}.json"
        assert run(pytester, command, capsys)[0] == 0
    status, output = run(pytester, snippet("merge-command"), capsys)
    assert status == 0, output
    report = json.loads((pytester.path / "merged.json").read_text())
    assert sorted(report["models"]) == ["sim-a", "sim-b"]
    assert (pytester.path / "merged.html").stat().st_size > 1000
    status, output = run(pytester, snippet("merge-gates-command"), capsys)
    assert status == 0, output
    assert "against the baseline: main-report.json" in output


# --- the simulator -------------------------------------------------------------------------


def test_the_simulator_command_serves_the_rules_as_written(pytester):
    """``python -m pytest_llm_matrix.simulator --port 8000 --config sim.toml`` as written,
    sim.toml holding the rules block's settings (at its top level, as the block's comment
    says): each rule answers."""
    header, *settings = snippet("simulator-rules").splitlines()
    assert header.startswith("[tool.llm-matrix.simulator]")
    (pytester.path / "sim.toml").write_text("\n".join(settings))
    command = snippet("simulator-command").strip()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=pytester.path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as server:
        serve(server)


def serve(server: subprocess.Popen[str]) -> None:
    import httpx

    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            error = server.stderr.read() if server.stderr else ""
            if "cannot listen on 127.0.0.1:8000" in error:
                pytest.skip("port 8000, which the docs' command names, is taken on this machine")
            pytest.fail(f"the simulator did not start: {error}")
        assert line.strip() == "pytest-llm-matrix simulator listening on http://127.0.0.1:8000"

        def ask(*messages: tuple[str, str]) -> str:
            body = {"model": "m", "messages": [{"role": r, "content": c} for r, c in messages]}
            answer = httpx.post("http://127.0.0.1:8000/v1/chat/completions", json=body, timeout=10)
            return answer.json()["choices"][0]["message"]["content"]

        assert ask(("user", "I want my MONEY BACK")) == "refund"
        assert ask(("user", "The capital of France?")) == "Paris"
        assert ask(("system", "Talk like a pirate."), ("user", "Hello!")) == "Ahoy"
        assert (
            ask(("user", "Hi"), ("assistant", "Your order left"), ("user", "When?"))
            == "About your order"
        )
        assert ask(("user", "Anything else")) == "I can help with that."
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0


AGENT = """
import json

TOOLS = [{"type": "function", "function": {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]

def test_agent_loop(openai_client, llm_model):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    ask = openai_client.chat.completions.create
    first = ask(model=llm_model.model, messages=messages, tools=TOOLS)
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "sunny, 24 C"}]
    second = ask(model=llm_model.model, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "It is sunny in Paris."
"""


def test_the_two_turn_agent_loop_of_the_simulator_page(pytester, no_keys):
    pytest.importorskip("openai")
    config = '[tool.llm-matrix.models.sim]\nprovider = "simulator"\n\n[tool.llm-matrix.simulator]\n'
    pytester.makefile(".toml", pyproject=config + snippet("simulator-agent-loop"))
    pytester.makepyfile(test_agent=AGENT)
    pytester.runpytest(*QUIET).assert_outcomes(passed=1)
