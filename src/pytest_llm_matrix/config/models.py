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

PROVIDERS: Final = ("openai", "anthropic", "openai-compatible", "simulator")
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
        """Whether the key this model needs (if any) is present in the environment."""
        return self.api_key_env is None or self.api_key() is not None

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
        key = self.api_key()
        if key is None or (key.isascii() and key.isprintable()):
            return None
        return (
            f"{self.api_key_env} holds a control or non-ASCII character inside the key "
            "(a newline from how it was set?); it cannot go in an HTTP header"
        )

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
