"""Which SDK requests go to the model under test: pure functions of the API and the path.

*Generation* calls (chat completions, completions, Responses, Anthropic messages) and the
calls that read back what a generation made there (a stored response, its input items, a
stored chat completion) go to the model under test. Everything else is *auxiliary*:
embeddings, moderations, token counting, files, audio, images, batches, models listing.
"""

from __future__ import annotations

import re
from typing import Final, Literal

Kind = Literal["generation", "follow-up", "auxiliary"]

#: Paths (relative to the SDK's base URL) that make an answer, by API.
GENERATION: Final = {
    "openai": ("/chat/completions", "/completions", "/responses"),
    "anthropic": ("/v1/messages", "/v1/complete"),
}
#: Paths under a generation path that read or act on what it made.
FOLLOW_UPS: Final = {"openai": ("/chat/completions/", "/responses/"), "anthropic": ()}
#: Paths under those that are auxiliary all the same (token counting, batches).
AUXILIARY_UNDER: Final = {
    "openai": ("/responses/input_tokens",),
    "anthropic": ("/v1/messages/count_tokens", "/v1/messages/batches"),
}
#: Azure OpenAI puts a deployment before the path: ``/deployments/<name>/chat/completions``.
_DEPLOYMENT: Final = re.compile(r"^/deployments/[^/]+(?=/)")


def canonical(api: str, path: str) -> str:
    """The API's own path for ``path``: no query, no Azure deployment prefix."""
    path = "/" + path.partition("?")[0].lstrip("/")
    if api == "openai":
        path = _DEPLOYMENT.sub("", path)
    return path.rstrip("/") or "/"


def kind_of(api: str, path: str) -> Kind:
    """What a request to ``path`` (relative to the SDK's base URL) of ``api`` is."""
    path = canonical(api, path)
    if path in GENERATION.get(api, ()):
        return "generation"
    if any(path == aux or path.startswith(aux + "/") for aux in AUXILIARY_UNDER.get(api, ())):
        return "auxiliary"
    if any(path.startswith(prefix) for prefix in FOLLOW_UPS.get(api, ())):
        return "follow-up"
    return "auxiliary"
