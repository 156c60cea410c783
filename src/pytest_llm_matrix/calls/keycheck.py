"""Keys checked up front: every selected model with a key is asked for its model listing at
the start of the session, all at once and in the background, so no test waits for a first
request.

Without a check, a model with a key sends one request at a time until it has answered once
(the first-request gate in :mod:`.exchange`), so a wrong key costs one request in all; but in
a parallel run every worker of the model then waits one whole model latency before it
starts. The listing (OpenAI-style ``GET {base_url}/models``, Anthropic ``GET /v1/models``) is
free and fast, and tells the same thing about the key:

- **2xx**, where the same listing refuses a request without a key: the key works. The model
  is marked verified for every process of the run (and, with ``--llm-coordinator``, every
  session of it), so its requests go out at once. When the listing is complete and does not
  hold the model's id, a line says so with the closest ids, and the model keeps its
  first-request gate (the id may still be served: not every server lists every alias).
- **401, or 429 ``insufficient_quota``**: the key cannot be used. The model is marked
  unavailable before any of its tests runs, and no chat request is sent. Its first test
  errs with the reason (as a refused first request failed), the others are skipped.
- **anything else** (a listing that answers without a key too, as OpenRouter's and local
  servers' do; a 403, which may be a key allowed to chat but not to list; 404 or 405 from a
  server without a listing; another error; no answer within :data:`CHECK_SECONDS`): nothing
  is concluded, and that model alone keeps the gate. An answer that comes after the time
  limit is not acted on.

While a model's check is under way its requests wait for the check (never longer than the
check's own time limit), not for a model latency. Models sharing a server and a key share one
request. Nothing is checked under ``--llm-record=replay``, and ``--llm-check-keys=off`` turns
it off for servers that object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from pytest_llm_matrix.calls.context import UNCLAIMED, claim_record
from pytest_llm_matrix.calls.exchange import redact
from pytest_llm_matrix.calls.limits import Coordinator
from pytest_llm_matrix.calls.retrying import KEY_REFUSED_KINDS, error_of, error_text
from pytest_llm_matrix.calls.transport import USER_AGENT, auth_headers, base_url
from pytest_llm_matrix.config.models import Model

#: The longest a check may take (connect and answer); a slower server keeps its gate.
CHECK_SECONDS: Final = 5.0
#: The most of a listing read (OpenRouter's, with descriptions, is a few MB).
LISTING_CAP: Final = 16 * 1024 * 1024

VERIFIED: Final = "verified"
UNAVAILABLE: Final = "unavailable"
UNLISTED: Final = "unlisted"  # the key works; the model's id is not in the listing
UNKNOWN: Final = "unknown"  # nothing concluded: the first-request gate decides


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the check of one model found (``detail`` never holds the key)."""

    state: str
    detail: str = ""
    listed: int = 0  # ids in the listing
    closest: tuple[str, ...] = ()


def listing_url(model: Model) -> str:
    """Where ``model``'s server lists the models its key can use."""
    if model.api == "anthropic":
        return f"{base_url(model)}/v1/models?limit=1000"  # one page: the most it gives
    return f"{base_url(model)}/models"


def checked(models: Iterable[Model]) -> list[Model]:
    """The models whose keys a check can tell something about: a key, set and sendable, at
    a server that lists models by their ids (not Azure OpenAI, which lists the models its
    deployments may run, not the deployments a request names)."""
    return [
        m
        for m in models
        if m.api_key_env
        and m.api_key() is not None
        and m.key_problem() is None
        and m.base_url
        and m.provider != "azure-openai"
    ]


def check(models: Sequence[Model], timeout: float = CHECK_SECONDS) -> dict[str, Outcome]:
    """Ask the server of ``models`` (one server, one key) for its listing; the outcome for
    each of them."""
    first = models[0]
    deadline = time.monotonic() + timeout
    url, headers = listing_url(first), auth_headers(first)
    try:
        status, kind, body, complete = _get(url, headers, timeout)
        if status < 300:
            # a listing that also answers without a key (OpenRouter's, a local server's)
            # proves nothing about the key
            bare = {k: v for k, v in headers.items() if k not in ("authorization", "x-api-key")}
            left = deadline - time.monotonic()
            open_status = _get(url, bare, left)[0] if left > 0 else 0
    except Exception as exc:  # any failure to ask is an answer we cannot use
        what = (
            f"no answer within {timeout:g} s"
            if "timed out" in str(exc) or "Timeout" in type(exc).__name__
            else f"{type(exc).__name__}: {exc}"
        )
        return {m.name: Outcome(UNKNOWN, _shown(what, m)) for m in models}
    if status < 300:
        try:
            data = json.loads(body) if complete else None
        except (ValueError, RecursionError):
            data = _NOT_JSON
        if data is _NOT_JSON or (not complete and "json" not in kind):
            # an HTML page or garbage: perhaps not the server's own answer
            return {m.name: Outcome(UNKNOWN, f"HTTP {status}, not a model listing") for m in models}
        ids = _listed_ids(data)
        outcomes = {m.name: _listed(m, ids) for m in models}
        if open_status == 0 or open_status < 300:
            why = (
                "its listing answers without a key too"
                if open_status
                else f"no answer within {timeout:g} s"
            )
            return {
                name: o if o.state == UNLISTED else Outcome(UNKNOWN, why, o.listed)
                for name, o in outcomes.items()
            }
        return outcomes
    code, message = error_of(body)
    cause = f"HTTP {status} {error_text(code, message)}".rstrip()
    # Only a refused key is the key's verdict: a 403 may be a key that may chat but not
    # list (OpenAI's restricted keys), which the first-request gate tells apart
    quota = status == 429 and "insufficient_quota" in (code, message)
    refused = status == 401 or (status == 400 and code in KEY_REFUSED_KINDS)
    state = UNAVAILABLE if refused or quota else UNKNOWN
    return {m.name: Outcome(state, _shown(cause, m)[:300]) for m in models}


_NOT_JSON: Final = object()


def _shown(text: str, model: Model) -> str:
    """``text`` for the terminal: without the key, control characters escaped."""
    text = redact(text, model)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, str, bytes, bool]:
    """(status, content type, body, whether the body is whole) of a GET that takes
    ``timeout`` at most (the caller ignores an answer that comes later).

    The standard library's client, not httpx2: the controller never needs httpx2 otherwise,
    and importing it there costs more CPU than the check itself while the workers start.
    No proxy, as the plugin's own transport sends the requests (the check and the requests
    must take one route); redirects are not followed (the key would go with them).
    """
    import urllib.error  # lazy: only a run that checks keys
    import urllib.request

    class _NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    deadline = time.monotonic() + timeout
    headers = {**headers, "user-agent": USER_AGENT, "accept": "application/json"}
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as error:  # a 4xx or 5xx (or an unfollowed redirect)
        response = error
    with response:
        status = int(response.status if hasattr(response, "status") else response.code)
        kind = str(response.headers.get("content-type", "")).lower()
        chunks, size = [], 0
        while chunk := response.read(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > LISTING_CAP:
                return status, kind, b"".join(chunks), False
            if time.monotonic() > deadline:
                raise TimeoutError(f"no whole answer within {timeout:g} s")
        return status, kind, b"".join(chunks), True


def _listed_ids(data: object) -> list[str] | None:
    """The model ids of a complete listing (OpenAI: ``{"data": [{"id": ...}]}``; Anthropic
    the same plus ``has_more``; Ollama's native ``{"models": [{"name": ...}]}``), or None."""
    if not isinstance(data, dict) or data.get("has_more") is True:
        return None  # not a listing, or a partial one: no conclusion from what is missing
    entries = data.get("data", data.get("models"))
    if not isinstance(entries, list):
        return None
    ids: list[str] = []
    for entry in entries:
        name = entry.get("id", entry.get("name")) if isinstance(entry, dict) else None
        if isinstance(name, str):
            ids.append(name)
    return ids


def _listed(model: Model, ids: list[str] | None) -> Outcome:
    if not ids or model.model in ids or f"{model.model}:latest" in ids:
        return Outcome(VERIFIED, listed=len(ids or ()))
    import difflib  # only when an id is missing

    closest = tuple(difflib.get_close_matches(model.model, ids, n=3, cutoff=0.6))
    return Outcome(UNLISTED, listed=len(ids), closest=closest)


class KeyChecks:
    """The checks of one session, run by its controller (see the module doc)."""

    def __init__(
        self,
        models: Sequence[Model],
        coordinator: Callable[[], Coordinator],
        timeout: float = CHECK_SECONDS,
    ) -> None:
        self.models = {m.name: m for m in checked(models)}
        self._coordinator = coordinator
        self.timeout = timeout
        self.outcomes: dict[str, Outcome] = {}
        self._threads: list[threading.Thread] = []
        self._started = self._deadline = 0.0
        self._lock = threading.Lock()
        self._said = False  # the outcomes were taken: later ones are not acted on
        self.elapsed = 0.0

    def start(self) -> None:
        """Mark every check under way, then run them, a thread per server and key. A
        coordinator that cannot take the marks leaves every model to its gate."""
        if not self.models:
            return
        # What the threads import, imported here: two threads importing at once can meet
        # in each other's half-imported modules (a test importing httpx2 meanwhile, which
        # imports urllib.request too, in a run without workers)
        import difflib  # noqa: F401
        import urllib.error
        import urllib.request  # noqa: F401

        self._started = time.monotonic()
        self._deadline = self._started + self.timeout
        groups: dict[tuple[str, str | None], list[Model]] = {}
        for model in self.models.values():
            groups.setdefault((listing_url(model), model.api_key()), []).append(model)
        try:
            coordinator = self._coordinator()
            for model in self.models.values():
                # a margin past the check's own limit: its marks are written before it ends
                coordinator.start_check(model.name, self.timeout + 2.0)
        except BaseException as exc:  # a Redis that refuses writes: its tests will say so
            why = f"{type(exc).__name__}: {exc}"
            self.outcomes = {name: Outcome(UNKNOWN, why) for name in self.models}
            return
        for group in groups.values():
            thread = threading.Thread(
                target=self._run, args=(group,), name="llm-matrix key check", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _run(self, group: list[Model]) -> None:
        outcomes = check(group, self.timeout)
        # Marks and outcomes under the lock, and only while nobody has taken the outcomes:
        # an answer that comes after they were said ("no answer within 5 s") is not acted on
        with self._lock:
            if self._said or time.monotonic() > self._deadline:
                return
            for model in group:
                self.outcomes[model.name] = self._mark(model, outcomes[model.name])

    def _mark(self, model: Model, outcome: Outcome) -> Outcome:
        try:
            coordinator = self._coordinator()
            if outcome.state == VERIFIED:
                coordinator.mark_verified(model.name)
            elif outcome.state == UNAVAILABLE:
                # the claim first: a test that finds the mark finds the claim too
                coordinator.update_record(claim_record(model.name), lambda old: old or UNCLAIMED)
                coordinator.mark_unavailable(model.name, f"{outcome.detail} (key check)")
        except BaseException as exc:  # a coordinator down: the gate decides
            outcome = Outcome(UNKNOWN, f"{type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(BaseException):  # the mark expires by itself
                self._coordinator().end_check(model.name)
        return outcome

    def wait(self) -> dict[str, Outcome]:
        """The outcomes, once every check has ended or its time is up (what ends later is
        not acted on)."""
        for thread in self._threads:
            thread.join(max(self._deadline + 0.5 - time.monotonic(), 0.0))
        with self._lock:
            if not self._said:
                self._said = True
                self.elapsed = time.monotonic() - self._started
                for name in self.models:
                    if name not in self.outcomes:
                        self.outcomes[name] = Outcome(
                            UNKNOWN, f"no answer within {self.timeout:g} s"
                        )
                        with contextlib.suppress(BaseException):  # it expires by itself
                            self._coordinator().end_check(name)  # no wait for it any more
        return self.outcomes

    def lines(self) -> list[str]:
        """What the checks found, for the terminal."""
        outcomes = self.wait()
        if not outcomes:
            return []
        verified = [name for name, o in outcomes.items() if o.state == VERIFIED]
        lines = [
            f"llm-matrix: keys checked in {self.elapsed:.2f} s: "
            + (f"{', '.join(verified)} verified" if verified else "none verified")
        ]
        for name, outcome in outcomes.items():
            model = self.models[name]
            if outcome.state == UNAVAILABLE:
                lines.append(
                    f"llm-matrix: {name} is unavailable: {outcome.detail}; its tests are "
                    "skipped, the first fails"
                )
            elif outcome.state == UNLISTED:
                closest = f"; closest: {', '.join(outcome.closest)}" if outcome.closest else ""
                said = f"llm-matrix: {name}: {unlisted(model, outcome)}{closest}"
                lines.append(_shown(said, model))
            elif outcome.state == UNKNOWN:
                why = outcome.detail or "no listing"
                lines.append(
                    f"llm-matrix: {name}: key not checked ({why}); its first request checks it"
                )
            if outcome.state == VERIFIED:
                with contextlib.suppress(BaseException):  # a coordinator down: tests say so
                    if (earlier := self._coordinator().unavailable(name)) is not None:
                        lines.append(
                            f"llm-matrix: {name}: its key is verified, but the run had marked "
                            f"it unavailable before: {earlier}; its tests are skipped (a new "
                            "run id starts afresh)"
                        )
        return lines

    def unlisted(self) -> list[str]:
        """The models whose ids the listing lacks, said as for ``--llm-strict``."""
        return [
            f"{name}: {unlisted(self.models[name], o)}"
            for name, o in self.wait().items()
            if o.state == UNLISTED
        ]


def unlisted(model: Model, outcome: Outcome) -> str:
    plural = "s" * (outcome.listed != 1)
    return (
        f"model id {model.model!r} is not among the {outcome.listed} model{plural} this key can use"
    )
