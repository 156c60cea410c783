"""The model spec: what a test gets from the ``llm_model`` fixture.

A :class:`Model` is plain data. It names where a model lives and how to reach it, but
never holds an API key: the key stays in the environment variable ``api_key_env`` names
and is read only when a client is built.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, Final

PROVIDERS: Final = ("openai", "anthropic", "openai-compatible", "azure-openai", "simulator")
#: How an ``azure-openai`` model's variable is sent: Azure's ``api-key`` header, or as the
#: bearer token it is (a Microsoft Entra ID token).
AZURE_AUTH: Final = ("api-key", "entra")
APIS: Final = ("openai", "anthropic")

#: The API base URL each provider uses when a model does not set ``base_url``.
DEFAULT_BASE_URLS: Final[Mapping[str, str]] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
}


@dataclasses.dataclass(frozen=True)
class Model:
    """One configured model, as the tests see it.

    ``name`` is the alias used in test ids (``test_x[name]``) and in ``--models``;
    ``model`` is the id sent to the API; ``api`` is the wire format spoken to it
    (``"openai"`` chat completions or ``"anthropic"`` messages).
    """

    name: str
    provider: str
    model: str
    api: str
    base_url: str | None = None
    api_key_env: str | None = None
    timeout: float | None = None
    max_concurrency: int | None = None
    rpm: int | None = None
    tags: tuple[str, ...] = ()
    input_price: float | None = None
    output_price: float | None = None
    #: the model id whose list price this model's tokens are priced at (an alias behind a
    #: gateway, a self-hosted copy of a listed model); see report.cost
    price_as: str | None = None
    #: where an answer says what it cost, in USD ("" reads nothing): a response header ...
    cost_header: str = "x-litellm-response-cost"
    #: ... or a dotted field of the answer's JSON (in a stream: of its usage event)
    cost_field: str = "usage.cost"
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    #: extra request headers: name -> a value, or ``{"env": NAME}`` (a secret, read from the
    #: environment when sent, and redacted like a key)
    headers: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    #: azure-openai: the ``api-version`` of its deployment paths (None: Azure's v1 API)
    api_version: str | None = None
    #: azure-openai: how the key is sent (AZURE_AUTH; None: ``api-key``)
    auth: str | None = None
    required: bool = True
    simulate: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, provider={self.provider!r}, model={self.model!r}, "
            f"base_url={self.base_url!r})"
        )

    @property
    def api_key_set(self) -> bool:
        """Whether the key (and the secret headers) this model needs are in the environment."""
        return self.missing_env() is None

    def secret_envs(self) -> list[str]:
        """The variables that hold this model's secrets: its key's, its headers'."""
        found = [self.api_key_env] if self.api_key_env else []
        return found + [v["env"] for v in self.headers.values() if isinstance(v, Mapping)]

    def missing_env(self) -> str | None:
        """The first of :meth:`secret_envs` that is unset or blank, if any."""
        return next((n for n in self.secret_envs() if not os.environ.get(n, "").strip()), None)

    def missing_reason(self) -> str | None:
        """Why the model cannot be asked: ``OPENAI_API_KEY is not set`` (or ``is blank``)."""
        missing = self.missing_env()
        if missing is None:
            return None
        return f"{missing} is {'blank' if missing in os.environ else 'not set'}"

    def header_values(self) -> dict[str, str]:
        """The configured headers as sent: a secret's read now (a blank one left out)."""
        values: dict[str, str] = {}
        for name, value in self.headers.items():
            if isinstance(value, Mapping):
                value = os.environ.get(value["env"], "").strip()
            if value:
                values[name] = value
        return values

    def api_key(self) -> str | None:
        """Read the model's API key from the environment, at the moment it is needed.

        Surrounding whitespace is dropped (a key pasted with its newline would otherwise end
        up in a header that httpx refuses, quoting the key); a blank value is no key.
        """
        if self.api_key_env is None:
            return None
        return os.environ.get(self.api_key_env, "").strip() or None

    def key_problem(self) -> str | None:
        """Why the key in the environment cannot be sent in a header, or None. Never
        quotes the key."""
        for name in self.secret_envs():
            value = os.environ.get(name, "").strip()
            if not (value.isascii() and value.isprintable()):
                return (
                    f"{name} holds a control or non-ASCII character inside its value "
                    "(a newline from how it was set?); it cannot go in an HTTP header"
                )
        return None

    @property
    def needs_simulator(self) -> bool:
        """A simulated model with no base_url of its own: served by the session's simulator."""
        return self.provider == "simulator" and self.base_url is None

    def at_simulator(self, url: str) -> Model:
        """This model pointed at the simulator serving at ``url``, if it needs one."""
        if not self.needs_simulator:
            return self
        suffix = "/v1" if self.api == "openai" else ""
        return dataclasses.replace(self, base_url=url + suffix)

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins, safe to send to xdist workers (the key is never included)."""
        data = dataclasses.asdict(self)
        data["tags"] = list(self.tags)
        data["params"] = dict(self.params)
        data["simulate"] = dict(self.simulate)
        data["headers"] = {
            k: dict(v) if isinstance(v, Mapping) else v for k, v in self.headers.items()
        }
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Model:
        values = dict(data)
        values["tags"] = tuple(values.get("tags", ()))
        return cls(**values)


def base_id(nodeid: str, model: str) -> str:
    """The test's id without its model: ``t.py::test_x[gpt-4o-1]`` -> ``t.py::test_x[1]``.

    The plugin parametrizes the model first, so the alias leads the bracket.
    """
    head, _, params = nodeid.partition("[")
    if not params.endswith("]"):
        return nodeid
    params = params[:-1]
    if params == model:
        return head
    if params.startswith(model + "-"):
        return f"{head}[{params[len(model) + 1 :]}]"
    return nodeid
