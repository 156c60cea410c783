"""The pre-commit hook, run by pre-commit itself in fresh git repositories.

The hook repository is a copy of this checkout's working tree (committed in a temporary
repository, so uncommitted changes are what is tested); pre-commit builds the hook's own
virtualenv from it, as it would from the published repository. Slow (pre-commit installs
the hook's environment: about a minute per environment), so the cases share one
PRE_COMMIT_HOME: a config naming the hook repository at its commit is run with `pre-commit
run` (`pre-commit try-repo` would ignore PRE_COMMIT_HOME and install the environment again
on each call, in a store of its own).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.snippets import snippet

ROOT = Path(__file__).resolve().parents[2]
PRE_COMMIT = shutil.which("pre-commit", path=str(Path(sys.executable).parent)) or shutil.which(
    "pre-commit"
)

pytestmark = [
    pytest.mark.skipif(PRE_COMMIT is None, reason="pre-commit is not installed (dev extras)"),
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
]

PROJECT_CONFIG = """
[tool.llm-matrix]
default = "sim"

[tool.llm-matrix.simulator]
default_reply = "pong"

[tool.llm-matrix.models.sim]
provider = "simulator"
"""

TESTS = """
def test_plain_client(llm):
    assert llm.complete("ping") == "pong"


def test_official_sdk(openai_client, llm_model):
    answer = openai_client.chat.completions.create(
        model=llm_model.model, messages=[{"role": "user", "content": "ping"}]
    )
    assert answer.choices[0].message.content == "pong"
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def pre_commit(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    assert PRE_COMMIT is not None
    return subprocess.run(
        [PRE_COMMIT, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout's working tree as a one-commit git repository."""
    repo = tmp_path_factory.mktemp("hook-repo")
    for name in ("pyproject.toml", "README.md", "LICENSE", ".pre-commit-hooks.yaml"):
        shutil.copy2(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "hook")
    return repo


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "PYTHON", "VIRTUAL_ENV", "TEST_MODELS"))
    }
    environ["PRE_COMMIT_HOME"] = str(tmp_path_factory.mktemp("pre-commit-home"))
    return environ


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's repository: a model config, two model tests (one through the SDK)."""
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent(PROJECT_CONFIG))
    (tmp_path / "test_models.py").write_text(TESTS)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "ping.txt").write_text("ping\n")
    (tmp_path / "notes.csv").write_text("a,b\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "project")
    return tmp_path


def use_hook(project: Path, hook_repo: Path, hook: str, extra: str = "") -> None:
    """Commit a .pre-commit-config.yaml that runs ``hook`` of the local hook repository, at
    its commit. Hooks with the same dependencies share one environment in PRE_COMMIT_HOME."""
    rev = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=hook_repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hook_repo.as_uri()}\n    rev: {rev}\n"
        f"    hooks:\n      - id: {hook}\n{extra}"
    )
    git(project, "add", "-A")


def test_the_fast_hook_runs_the_tests_for_config_and_prompt_changes(hook_repo, env, project):
    """A change to pyproject.toml alone, or to a prompt file, runs the tests (both pass with
    the hook's default dependencies, the SDK included); a file the tests do not read skips
    the hook."""
    use_hook(project, hook_repo, "llm-matrix-fast")
    for changed in ("pyproject.toml", "prompts/ping.txt"):
        result = pre_commit(project, env, "run", "llm-matrix-fast", "--verbose", "--files", changed)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        assert "llm tests (fast tier)" in output, output
        assert "Passed" in output, output
        assert "2 passed" in output, output
    result = pre_commit(project, env, "run", "llm-matrix-fast", "--files", "notes.csv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(no files to check)Skipped" in result.stdout, result.stdout


def test_dependencies_without_the_sdk_fail_the_hook_loudly(hook_repo, env, project):
    """`additional_dependencies` replaces the hook's own list: without the SDK in it the
    SDK test cannot run, and the hook fails naming the fix (it must not pass by a skip)."""
    use_hook(
        project, hook_repo, "llm-matrix-fast", '        additional_dependencies: ["iniconfig"]\n'
    )
    result = pre_commit(project, env, "run", "--all-files")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Failed" in output, output
    assert "the openai SDK is not installed" in output, output
    assert "add it to additional_dependencies" in output, output


#: What the docs' config (docs/ci.md) names, replaced here by the local hook repository.
DOCS_REPO = "repo: https://github.com/pytest-llm-matrix/pytest-llm-matrix\n"
DOCS_REV = "rev: " + "0" * 40 + "  #"


def test_the_docs_config_runs_the_replay_hook_on_the_example_suite(hook_repo, env, tmp_path):
    """The docs' `.pre-commit-config.yaml` as written, but for its repository and commit
    (the local hook repository and its commit's hash), run by `pre-commit run --all-files`
    on the example project and its recordings in a fresh repository: `llm-matrix-replay`
    replays every model's answers, the weak model's failures included (it is optional, so
    the hook passes); a changed prompt then fails the hook with the command that records it.
    The second run reuses the first one's hook environment (one install, not two)."""
    rev = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=hook_repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    config = snippet("pre-commit-config")
    assert config.count(DOCS_REPO) == 1, config
    assert config.count(DOCS_REV) == 1, config
    config = config.replace(DOCS_REPO, f"repo: {hook_repo}\n").replace(DOCS_REV, f"rev: {rev}  #")
    project = tmp_path / "example"
    shutil.copytree(
        ROOT / "example_project",
        project,
        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.json.tmp"),
    )
    (project / ".pre-commit-config.yaml").write_text(config)
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "example")
    args = ("run", "--all-files", "--verbose")
    result = pre_commit(project, env, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "llm tests (every model, replayed)" in output, output
    assert "llm tests (fast tier)" not in output, output  # commented out in the docs
    assert "3 failed, 34 passed, 8 skipped" in output, output
    assert "--llm-record=replay: 52 requests replayed, none sent" in output, output
    bot = project / "support_bot.py"
    bot.write_text(bot.read_text().replace("Classify", "Categorise", 1))
    changed = pre_commit(project, env, *args)
    output = changed.stdout + changed.stderr
    assert changed.returncode == 1, output
    assert "no recording of this request to sim-fast" in output, output
    assert "run pytest --llm-record=new --models=sim-fast" in output, output
