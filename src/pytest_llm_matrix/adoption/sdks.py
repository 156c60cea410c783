"""The official SDKs the plugin binds, and which of their releases it supports.

openai 1.x and 2.x and anthropic 0.x build on httpx; openai 3.x and anthropic 1.x and later
on httpx2 (and refuse a client of the other library). Every generation makes its requests
in one generated base class, ``_base_client.BaseClient._build_request``, and sends them with
its HTTP client's ``send``: what :mod:`pytest_llm_matrix.adoption.binding` builds on.

The oldest releases supported are the first that run on current httpx (0.28 dropped the
``proxies`` argument that older ones pass): openai 1.55.3 and anthropic 0.40.0.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
from types import ModuleType
from typing import Final


@dataclasses.dataclass(frozen=True)
class SDK:
    """One official SDK: its package, the API it speaks, the releases supported."""

    package: str
    api: str  # "openai" or "anthropic", as a model's ``api``
    oldest: tuple[int, ...]  # the oldest release supported
    before: tuple[int, ...]  # the first release not supported (a major not known yet)
    httpx2_from: tuple[int, ...]  # the first release on httpx2
    key_env: str  # the variable its clients read their key from
    clients: tuple[str, ...]  # its client classes, sync and async

    @property
    def supported(self) -> str:
        """``openai>=1.55.3,<4``: the range, as pip reads it."""
        return f"{self.package}>={_text(self.oldest)},<{_text(self.before)}"


OPENAI: Final = SDK(
    "openai", "openai", (1, 55, 3), (4,), (3,), "OPENAI_API_KEY", ("OpenAI", "AsyncOpenAI")
)
ANTHROPIC: Final = SDK(
    "anthropic",
    "anthropic",
    (0, 40, 0),
    (3,),
    (1,),
    "ANTHROPIC_API_KEY",
    ("Anthropic", "AsyncAnthropic"),
)
SDKS: Final = (OPENAI, ANTHROPIC)


def _text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def parse(version: str) -> tuple[int, ...]:
    """The release numbers of a version string: ``"1.109.1"`` -> ``(1, 109, 1)``, ``"2.0.0rc1"``
    -> ``(2, 0, 0)``."""
    numbers = []
    for part in version.split(".")[:3]:
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
    return tuple(numbers)


@functools.cache
def installed(sdk: SDK) -> str | None:
    """The installed release of ``sdk``, or None."""
    import importlib.metadata  # only where an SDK is looked for

    try:
        return importlib.metadata.version(sdk.package)
    except importlib.metadata.PackageNotFoundError:
        return None


def problem(sdk: SDK, version: str | None = None) -> str | None:
    """Why the installed (or given) release of ``sdk`` cannot be used, or None."""
    version = installed(sdk) if version is None else version
    if version is None:
        return None
    release = parse(version)
    if sdk.oldest <= release < sdk.before:
        return None
    return (
        f"{sdk.package} {version} is not supported by pytest-llm-matrix (supported: "
        f"{sdk.supported}): pip install '{sdk.supported}'"
    )


def http_library(sdk: SDK, version: str | None = None) -> str:
    """The HTTP library a client of this release takes: ``"httpx"`` or ``"httpx2"``."""
    version = installed(sdk) if version is None else version
    return "httpx2" if version is not None and parse(version) >= sdk.httpx2_from else "httpx"


def module(sdk: SDK) -> ModuleType | None:
    """The SDK's package, imported (None: not installed)."""
    try:
        return importlib.import_module(sdk.package)
    except ImportError:
        return None


def of_client(client: object) -> SDK | None:
    """The SDK a client object belongs to."""
    package = type(client).__module__.partition(".")[0]
    return next((sdk for sdk in SDKS if sdk.package == package), None)
