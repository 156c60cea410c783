"""The docs: the generated reference is current, the README stays short, and every link
between the README and the docs pages reaches a file and an anchor that exist.

``mkdocs build --strict`` (in ``.ci/run``) checks the site's own links; these tests also
cover the README (which is no page of the site), run without mkdocs installed, and check
that every heading's anchor is the same on GitHub and on the site, so one link works on
both.
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from pathlib import Path
from types import ModuleType

import pytest

from tests.plugin.test_markdown import outside_fences

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
#: How the README links into the repository: absolute, so that they work on PyPI too.
REPOSITORY = "https://github.com/pytest-llm-matrix/pytest-llm-matrix/"
LOCAL_URLS = (
    REPOSITORY + "blob/main/",
    REPOSITORY + "tree/main/",
    "https://raw.githubusercontent.com/pytest-llm-matrix/pytest-llm-matrix/main/",
)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")
ANCHOR = re.compile(r"<a id=\"([^\"]+)\"></a>")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_is_generated_from_the_code():
    gen = generator()
    committed = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert committed == gen.render(), (
        f"docs/reference.md is stale (an option, config field or the report schema changed): "
        f"run {gen.COMMAND} and commit the result"
    )


def test_the_reference_names_every_option_ini_key_and_field():
    from pytest_llm_matrix.config import registry

    gen = generator()
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    options, inis = gen.plugin_parser()
    names = [max(names, key=len) for names, _ in options]
    assert len(names) > 30
    for name in [*names, *inis, *registry.MODEL_FIELDS, *registry.TOP_LEVEL_FIELDS]:
        assert f"`{name}" in text, name


def test_a_config_field_without_a_description_stops_the_generator(monkeypatch):
    from pytest_llm_matrix.config import registry

    gen = generator()
    monkeypatch.setattr(registry, "MODEL_FIELDS", {**registry.MODEL_FIELDS, "colour": str})
    with pytest.raises(SystemExit, match="colour"):
        gen.config_section()


def test_the_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move the detail into docs/"


def test_every_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^  - [^:]+: (\S+\.md)$", nav, re.M))
    assert listed == {page.name for page in PAGES}


def github_slug(text: str) -> str:
    """A heading's anchor on GitHub: lower case, punctuation dropped, each space a ``-``."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def mkdocs_slug(text: str) -> str:
    """A heading's anchor on the site (Python-Markdown's ``toc.slugify``)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def prose(text: str) -> list[str]:
    """The lines of a Markdown file outside fenced code."""
    return [line for _, line in outside_fences(text.splitlines())]


def anchors(path: Path) -> set[str]:
    """The anchors a Markdown file has: its headings' and its ``<a id>`` ones."""
    found: set[str] = set()
    for line in prose(path.read_text(encoding="utf-8")):
        found.update(ANCHOR.findall(line))
        if heading := re.match(r"#{1,6} (.+)", line):
            text = re.sub(r"[`*]", "", heading.group(1)).strip()
            assert github_slug(text) == mkdocs_slug(text), (
                f"{path.name}: the heading {text!r} has one anchor on GitHub "
                f"({github_slug(text)}) and another on the site ({mkdocs_slug(text)})"
            )
            assert github_slug(text) not in found, f"{path.name}: two headings {text!r}"
            found.add(github_slug(text))
    return found


def targets(path: Path) -> list[tuple[str, Path, str]]:
    """Each link of ``path`` to a file of this repository: (as written, file, anchor)."""
    found = []
    for line in prose(path.read_text(encoding="utf-8")):
        for link in LINK.findall(line):
            local = next((link[len(url) :] for url in LOCAL_URLS if link.startswith(url)), None)
            if local is not None:
                base = ROOT
            elif link.startswith(("http://", "https://", "mailto:")):
                continue
            else:
                local, base = link, path.parent
            where, _, anchor = local.partition("#")
            found.append((link, (base / where).resolve() if where else path, anchor))
    return found


@pytest.mark.parametrize(
    "path", [ROOT / "README.md", *PAGES], ids=["README.md", *(p.name for p in PAGES)]
)
def test_every_link_reaches_its_file_and_anchor(path: Path):
    broken = []
    for link, target, anchor in targets(path):
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and anchor not in anchors(target):
            broken.append(f"{link}: no anchor #{anchor} in {target.relative_to(ROOT)}")
    assert not broken, f"{path.name}: " + "; ".join(broken)


def test_the_readme_links_into_the_docs():
    linked = {target for _, target, _ in targets(ROOT / "README.md")}
    assert {DOCS / "quickstart.md", DOCS / "troubleshooting.md", DOCS / "reference.md"} <= linked


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Work shared by a module's tests", "work-shared-by-a-modules-tests"),
        ("HTTP layer: retries, caps, timeouts, cost", "http-layer-retries-caps-timeouts-cost"),
        ("Ollama, vLLM, llama.cpp, LM Studio", "ollama-vllm-llamacpp-lm-studio"),
        ("price_as names no listed model", "price_as-names-no-listed-model"),
    ],
)
def test_slugs(text: str, slug: str):
    assert github_slug(text) == mkdocs_slug(text) == slug


def test_slugs_that_differ_are_found():
    assert github_slug("python -m x") != mkdocs_slug("python -m x")


#: The plugin's own options, as the docs name them: ``--models``, ``--max-concurrency`` and
#: every ``--llm-...`` (what other tools take, ``--all-files`` or ``--strict``, is theirs).
OWN_OPTION = re.compile(r"(?<![\w-])(--(?:llm-[\w-]+|models|max-concurrency))(?![\w-])")


def test_every_option_the_docs_name_exists():
    """An option of the plugin (or of ``python -m pytest_llm_matrix merge``) named anywhere
    in the README or the docs, prose or code, is one the plugin has: a renamed or removed
    option fails here rather than in a reader's run."""
    from pytest_llm_matrix.__main__ import build_parser

    options, _ = generator().plugin_parser()
    known = {name for names, _ in options for name in names}
    known.update(o for action in build_parser()._actions for o in action.option_strings)
    unknown = sorted(
        {
            f"{path.relative_to(ROOT)}: {option}"
            for path in [ROOT / "README.md", *PAGES]
            for option in OWN_OPTION.findall(path.read_text(encoding="utf-8"))
            if option not in known
        }
    )
    assert not unknown, unknown


#: How a workflow installs the plugin until a release exists: the repository at a full commit.
PINNED_INSTALL = re.compile(
    r'pip install "pytest-llm-matrix(?:\[([\w,]+)\])? @ '
    r'git\+https://github\.com/pytest-llm-matrix/pytest-llm-matrix@[0-9a-f]{40}"'
)


def workflow_commands() -> list[str]:
    """Every command line of the example's GitHub workflow and of the docs' YAML blocks."""
    yaml = pytest.importorskip("yaml")
    from tests.snippets import blocks

    texts = [(ROOT / "example_project/.github/workflows/llm-tests.yml").read_text()]
    texts += [block.text for block in blocks() if block.language == "yaml"]
    lines = []
    for text in texts:
        found = yaml.safe_load(text)
        stack = [found]
        while stack:  # every "run:" value, wherever it is nested
            item = stack.pop()
            if isinstance(item, dict):
                lines += str(item["run"]).splitlines() if "run" in item else []
                stack += list(item.values())
            elif isinstance(item, list):
                stack += item
    return lines


def test_the_workflows_install_the_plugin_pinned_and_use_its_options():
    """The example's workflow and the docs' workflow blocks: the plugin installed from the
    repository at a full commit, with extras it has (no index serves it yet), and pytest
    given only options the plugin has."""
    import tomllib

    from pytest_llm_matrix.__main__ import build_parser

    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    options, _ = generator().plugin_parser()
    known = {name for names, _ in options for name in names}
    known.update(o for action in build_parser()._actions for o in action.option_strings)
    commands = workflow_commands()
    installs = [line for line in commands if "pip install" in line and "pytest-llm-matrix" in line]
    assert len(installs) >= 5, installs
    for line in installs:
        pinned = PINNED_INSTALL.search(line)
        assert pinned, f"not installed from the repository at a commit: {line}"
        assert set((pinned.group(1) or "").split(",")) - {""} <= extras, line
    runs = [line for line in commands if re.search(r"(^|\s)pytest\s", line)]
    assert len(runs) >= 4, runs
    unknown = [o for line in runs for o in OWN_OPTION.findall(line) if o not in known]
    assert not unknown, unknown
