"""The sans-IO heart of the HTTP layer: one logical request to a model, as steps.

:meth:`Exchange.run` is a generator that *describes* a request with its retries — send,
read, sleep — and the drivers in :mod:`pytest_llm_matrix.calls.transport` perform those steps
with httpx2's or httpx's own calls, sync or async. On the way it

- waits for a slot of the global and per-model caps (shared by every xdist worker),
  honours a model's shared 429 cooldown and rpm window, waits for a key check under way
  (see :mod:`.keycheck`), and lets a not-yet-verified model
  send only one request at a time, so a wrong key costs one request, not one per test;
- retries 408/429/5xx/529, connection errors and read timeouts, waiting what the server
  asked for first (Retry-After ...), with jittered backoff otherwise, never past the test's
  deadline, and releases its slot before every wait;
- marks a model unavailable for the whole session on 401/403 (for a request that carried
  the model's configured key: another key is the test's own business), unknown model or
  exhausted quota;
- records attempts, tokens, latency and time to first token for the running test, in the
  model under test's row or, for an auxiliary request, in that request's own row.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import random
import sys
import time
import zlib
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import pytest

from pytest_llm_matrix.calls import context, recording, transcript
from pytest_llm_matrix.calls.retrying import (
    KEY_REFUSED_KINDS,
    Verdict,
    backoff,
    classify,
    error_of,
    error_text,
    request_id,
    seconds,
    server_wait,
)
from pytest_llm_matrix.calls.usage import (
    StreamTracker,
    Usage,
    cost_in,
    cost_value,
    usage_from_body,
)
from pytest_llm_matrix.config.redaction import forms_of, mask

if TYPE_CHECKING:
    from pytest_llm_matrix.calls.limits import Coordinator, Lease
    from pytest_llm_matrix.config.models import Model

#: Kept free before the test's deadline, so that our own, clearer failure comes first.
DEADLINE_MARGIN: Final = 0.25
#: The header that tells a simulated model which test asks (the simulator's chance rules).
TEST_HEADER: Final = "x-llm-matrix-test"
POLL_FIRST: Final = 0.002
#: Waiters poll about as often as a contended slot's hand-off lasts (limits.HANDOFF), so
#: long waiters are not outrun by fresh callers.
POLL_MAX: Final = 0.01

# --- what the drivers are asked to do ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclasses.dataclass(frozen=True)
class Send:
    request: Any


@dataclasses.dataclass(frozen=True)
class Read:
    """Read the whole body, within ``limit`` seconds in all (None: no limit): per-read
    timeouts alone never end a body that trickles in a byte at a time."""

    response: Any
    limit: float | None = None


@dataclasses.dataclass(frozen=True)
class Replay:
    """Give back a recorded answer to ``request`` (see :mod:`.recording`): nothing is sent."""

    answer: Any
    request: Any


Step = Sleep | Send | Read | Replay


#: Values that stand for "no key" in a request: what the fixtures give an SDK client for a
#: model without one (an SDK refuses to be built without a key).
NO_KEY: Final = "not-needed"
#: The headers that carry credentials: OpenAI and compatible servers, Anthropic, Azure.
CREDENTIAL_HEADERS: Final = ("authorization", "x-api-key", "api-key")


def credentials_of(request: Any) -> frozenset[str]:
    """The credentials a request carries (keys and tokens, without ``Bearer``)."""
    found = set()
    for name in CREDENTIAL_HEADERS:
        value = request.headers.get(name)
        if value:
            value = value.strip()
            if value[:7].lower() == "bearer ":
                value = value[7:].strip()
            if value and value != NO_KEY:
                found.add(value)
    return frozenset(found)


def credentials_of_model(model: Model) -> frozenset[str]:
    key = model.api_key()
    return frozenset({key}) if key else frozenset()


@dataclasses.dataclass(frozen=True)
class Route:
    """Whose request this is. The model under test's (the default), or an auxiliary one
    that the code under test sent for a side job (see :mod:`pytest_llm_matrix.adoption`):
    counted in the row ``account`` with ``about`` (builtins: what the report says of it),
    kept in the test's own recordings; one that goes where its client sent it is only
    watched (``observe``): its model id left as it is, one attempt, its errors and answers
    handed back as they come, never making a model unavailable."""

    account: str | None = None
    about: Mapping[str, Any] | None = None
    #: watched only: its model id as it is, one attempt, its errors and answers as they
    #: come (its client retries), never making a model unavailable
    observe: bool = False
    #: a shared fixture sent it (``path/conftest.py::name``): kept with that fixture's
    #: recordings, which any test that sets the fixture up finds
    tape: str | None = None
    destination: str | None = None  # for messages: where the request goes

    @property
    def role(self) -> str:
        """Whose request this is, as a transcript says: the model under test's, the
        judge's, or an auxiliary one."""
        if self.account is None:
            return "model"
        return "judge" if (self.about or {}).get("kind") == "judge" else "auxiliary"


MAIN: Final = Route()


def redact(text: str, model: Model) -> str:
    """``text`` without ``model``'s key or secret headers, in any of their forms (see
    :mod:`pytest_llm_matrix.config.redaction`)."""
    forms = secret_forms(model)
    return mask(text, forms) if forms else text  # all at once: two may share an end


def secret_forms(model: Model) -> frozenset[str]:
    """The forms of ``model``'s key and secret headers, as the environment has them now."""
    return _forms_of(tuple(os.environ.get(name, "").strip() for name in model.secret_envs()))


@functools.lru_cache(maxsize=16)
def _forms_of(secrets: tuple[str, ...]) -> frozenset[str]:
    """Worked out once per set of secrets, not once per request."""
    return frozenset().union(*(forms_of(secret) for secret in secrets if secret))


class _Poll:
    """Short, growing, jittered pauses while waiting for a slot, a probe or a window."""

    def __init__(self) -> None:
        self.next = POLL_FIRST

    def __call__(self) -> float:
        pause = self.next * random.uniform(0.5, 1.0)
        self.next = min(POLL_MAX, self.next * 1.5)
        return pause


@dataclasses.dataclass
class _Held:
    lease: Lease | None = None
    probe: Lease | None = None

    def release(self) -> None:
        for held in (self.lease, self.probe):
            if held is not None:
                held.release()
        self.lease = self.probe = None


class Exchange:
    """One logical request to ``model``: gates, attempts, waits and accounting."""

    def __init__(
        self,
        model: Model,
        errors: tuple[type[BaseException], ...],
        rewrite_model: bool | None = None,
        route: Route | None = None,
    ) -> None:
        self.model = model
        #: a body naming another model id: rewritten (True), refused (False), or as the
        #: session's --llm-rewrite-model says (None)
        self.rewrite_model = rewrite_model
        self.route = route or MAIN
        self.name = model.name
        self.errors = errors
        self.ctx = context.current()
        self.tally = (
            self.ctx.tally(self.route.account, self.route.about) if self.ctx is not None else None
        )
        limits = context.limits()
        self.coordinator: Coordinator | None = limits.coordinator if limits else None
        self.policy = limits.policy if limits else context.RetryPolicy()
        #: whether the last attempt got an answer from the model (recording keeps a failure
        #: only then: a connection error or a refused key is not the model's answer)
        self.answered = False
        #: the request as the test sent it, its JSON body, and whether it is in the test's
        #: transcript yet (see transcript)
        self.request: Any = None
        self.body: dict[str, Any] | None = None
        self.noted = False
        self.status = 0  # the last answer's HTTP status
        self.replayed = False

    # -- budget ---------------------------------------------------------------------

    def _left(self) -> float | None:
        left = self.ctx.time_left() if self.ctx is not None else None
        return None if left is None else left - DEADLINE_MARGIN

    def _budget(self) -> str:
        ctx = self.ctx
        if ctx is None or ctx.timeout is None:
            return "this test's deadline"
        source = "" if ctx.timeout_source == "timeout" else f" ({ctx.timeout_source})"
        return f"this test's {seconds(ctx.timeout)} timeout{source}"

    def _may_wait(self, wait: float, what: str, attempts: int, said: str = "") -> None:
        """Fail now, with the reason, if ``wait`` would carry us past the deadline."""
        __tracebackhide__ = True
        left = self._left()
        if left is not None and wait > left:
            tried = f" after {attempts} attempt{'s' * (attempts != 1)}" if attempts else ""
            pytest.fail(
                f"{what}: gave up{tried}; {said or f'a {seconds(wait)} wait'} exceeds the "
                f"{seconds(max(left, 0))} left of {self._budget()}",
                pytrace=False,
            )

    # -- gates ----------------------------------------------------------------------

    def _gates(self, attempts: int) -> Generator[Step, Any, _Held]:
        """Wait until this attempt may go: availability, cooldown, probe, slot, rpm."""
        coordinator = self.coordinator
        held = _Held()
        if coordinator is None:
            return held
        poll = _Poll()
        while True:
            context.refuse(self.name)
            cooldown = min(
                coordinator.cooldown_until(self.name) - time.time(), self.policy.max_wait
            )
            if cooldown > 0:
                self._may_wait(cooldown, f"rate-limited by {self.name}", attempts)
                yield Sleep(cooldown)
                continue
            # A model with a key sends one request at a time until it has answered once, so
            # a wrong or expired key costs one request in all, not one per test. A model
            # without a key has no credentials to get wrong and skips that first wait.
            if self.model.api_key_env and not coordinator.is_verified(self.name):
                if coordinator.checking(self.name):  # its key check ends within seconds
                    self._may_wait(poll.next, f"{self.name}: waiting for its key check", attempts)
                    yield Sleep(poll())
                    continue
                held.probe = coordinator.try_probe(self.name)
                if held.probe is None:
                    self._may_wait(poll.next, f"{self.name}: first request", attempts)
                    yield Sleep(poll())
                    continue
                if context.refusal(self.name) is not None or coordinator.is_verified(self.name):
                    # its last holder answered between our look and our taking it: a refused
                    # key is refused at the top, a verified one needs no probe
                    held.release()
                    continue
            held.lease = coordinator.try_acquire(self.name, self.model.max_concurrency)
            if held.lease is None:
                held.release()
                self._may_wait(poll.next, f"{self.name}: waiting for a request slot", attempts)
                yield Sleep(poll())
                continue
            if self.model.rpm:
                wait = coordinator.rpm_wait(self.name, self.model.rpm)
                if wait > 0:
                    held.release()
                    self._may_wait(wait, f"{self.name}: rpm limit {self.model.rpm}", attempts)
                    yield Sleep(wait)
                    continue
            return held

    def _set_timeouts(self, request: Any) -> None:
        """Connect and read timeouts never reach past the test's deadline."""
        left = self._left()
        if left is None:
            return
        left = max(left, 0.01)
        current = request.extensions.get("timeout", {})
        request.extensions["timeout"] = {
            key: left if current.get(key) is None else min(current[key], left)
            for key in ("connect", "read", "write", "pool")
        }

    def _model_checked(self, request: Any, body: dict[str, Any] | None) -> Any:
        """``request``, whose body names the model under test's id: another id is rewritten
        to it (``rewrite_model``, or ``--llm-rewrite-model``), or fails the test before
        anything is sent (it would reach this model's server, or another model)."""
        __tracebackhide__ = True
        sent = body.get("model") if body is not None else None
        if self.route.observe:
            return request
        if body is None or not isinstance(sent, str) or sent == self.model.model:
            return request
        rewrite = context.rewrite_model() if self.rewrite_model is None else self.rewrite_model
        if not rewrite:
            pytest.fail(
                f"test sent model {sent!r} to {self.name}, whose model id is "
                f"{self.model.model!r}; use llm_model.model, or --llm-rewrite-model to send "
                "every request to the model under test",
                pytrace=False,
            )
        body = {**body, "model": self.model.model}
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
        return type(request)(
            request.method,
            request.url,
            headers=headers,
            content=json.dumps(body).encode(),
            extensions=request.extensions,
        )

    # -- the exchange ---------------------------------------------------------------

    def run(
        self, request: Any, wrap_stream: Callable[[Any, StreamWatch], None]
    ) -> Generator[Step, Any, Any]:
        """The exchange, as steps; what it spent is saved for a crash when it ends."""
        __tracebackhide__ = True
        try:
            return (yield from self._run(request, wrap_stream))
        except pytest.fail.Exception as failed:
            if not self.noted and self.request is not None:
                self.note(f"failed: {failed.msg}", None, None)
            raise
        finally:
            context.checkpoint(self.ctx)

    # -- the transcript -------------------------------------------------------------

    def note(
        self, answer: str, usage: Usage | None, latency: float | None, stream: bool = False
    ) -> None:
        """Put this request and ``answer`` in the running test's transcript (redacted)."""
        ctx = self.ctx
        self.noted = True
        if ctx is None or not transcript.chars() or not ctx.room(transcript.MAX_EXCHANGES):
            return
        request = self.request
        api = transcript.api_of(request.url.path)
        body = self.body
        if body is None:
            try:
                data = json.loads(request.content)
            except (ValueError, RecursionError, RuntimeError):  # not JSON; a stream not read
                data = None
            body = data if isinstance(data, dict) else None
        role = self.route.role
        forms = secret_forms(self.model)

        def hidden(text: str) -> str:
            return mask(text, forms) if forms else text

        usage = usage or Usage()
        ctx.note(
            {
                "model": self.route.account if role == "auxiliary" else self.name,
                "role": role,
                "api": api,
                "input": [
                    {"role": m["role"], "text": hidden(m["text"])}
                    for m in transcript.input_of(api, body)
                ],
                "answer": hidden(transcript.cut(answer)),
                "status": self.status,
                "stream": stream,
                "replayed": self.replayed,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
                "latency_s": None if latency is None else round(latency, 6),
            },
            transcript.MAX_EXCHANGES,
        )

    def _run(
        self, request: Any, wrap_stream: Callable[[Any, StreamWatch], None]
    ) -> Generator[Step, Any, Any]:
        __tracebackhide__ = True
        if self.ctx is not None and self.route.account is None:
            self.ctx.reached = True
        body = _json_body(request)
        self.request, self.body = request, body
        streaming = body is not None and body.get("stream") is True
        request = self._model_checked(request, body)
        recorder = recording.active()
        if recorder is None:
            return (yield from self._live(request, streaming, wrap_stream, None))
        # an auxiliary request is kept with the test's own recordings, on the model under test
        # (or with a shared fixture's, if one sent it)
        owner = self.ctx.model if self.route.account and self.ctx and self.ctx.model else None
        tape = recording.tape_for(self.ctx, owner or self.name, self.route.tape)
        if tape is None:
            if recorder.offline:
                pytest.fail(
                    f"{self.name}: a request made outside a test cannot be replayed "
                    f"(--llm-record={recorder.mode})",
                    pytrace=False,
                )
            return (yield from self._live(request, streaming, wrap_stream, None))
        entry = recorder.mask(recording.request_entry(request, recorder.ignore))
        key = recording.key_of(entry)
        if recorder.mode != "all":
            hit = tape.take(key)
            if hit is not None:
                return (yield from self._replay(hit, request))
            if recorder.offline:
                pytest.fail(tape.miss(entry, self.route.destination), pytrace=False)

        def keep(answer: dict[str, Any], latency: float, ttft: float | None) -> None:
            tape.add(
                {"request": entry, "key": key, "response": answer, "latency": round(latency, 6)}
                | ({"ttft": round(ttft, 6)} if ttft is not None else {})
            )
            if self.tally is not None:
                self.tally.count(recorded=1)

        try:
            return (yield from self._live(request, streaming, wrap_stream, keep))
        except pytest.fail.Exception as failed:
            if self.answered:  # the model's answers made the test fail: that is recorded
                tape.add({"request": entry, "key": key, "failure": str(failed.msg)})
                if self.tally is not None:
                    self.tally.count(recorded=1)
            raise
        except Exception as error:
            library = type(error).__module__.partition(".")[0]
            if self.route.observe and library in ("httpx", "httpx2"):
                # a watched request's transport error is what its client saw: kept, for a
                # replay to raise it again (the code under test may fall back on it)
                shown = {"type": type(error).__name__, "message": str(error)}
                tape.add({"request": entry, "key": key, "error": shown})
                if self.tally is not None:
                    self.tally.count(recorded=1)
            raise

    def _replay(self, hit: dict[str, Any], request: Any) -> Generator[Step, Any, Any]:
        """A recorded answer, counted as the live one was (tokens apart: not spent now)."""
        __tracebackhide__ = True
        tally = self.tally
        self.replayed = True
        if tally is not None:
            tally.count(replayed=1)
            for name, key in (("latencies", "latency"), ("ttft", "ttft")):
                if hit.get(key) is not None:
                    tally.record(name, hit[key])
        if "failure" in hit:
            pytest.fail(hit["failure"], pytrace=False)
        if "error" in hit:  # a watched request's transport error, raised as it was
            library = sys.modules[type(request).__module__.partition(".")[0]]
            kind = getattr(library, hit["error"]["type"], None)
            if not (isinstance(kind, type) and issubclass(kind, library.TransportError)):
                kind = library.TransportError
            raise kind(hit["error"]["message"], request=request)
        answer = hit["response"]
        usage: Usage | None = None
        if "events" in answer:
            tracker = StreamTracker()
            tracker.feed(recording.answer_bytes(answer))
            usage = tracker.usage
        elif isinstance(answer.get("json"), dict):
            usage = usage_from_body(answer["json"])
        if usage is not None and tally is not None:
            tally.count(
                replayed_input_tokens=usage.input_tokens,
                replayed_output_tokens=usage.output_tokens,
                replayed_cached_tokens=usage.cached_tokens,
            )
        if transcript.chars():
            self._note_replayed(answer, usage, hit.get("latency"))
        return (yield Replay(answer, request))

    def _note_replayed(
        self, answer: Mapping[str, Any], usage: Usage | None, latency: object
    ) -> None:
        status = answer.get("status")
        self.status = status if isinstance(status, int) else 0
        api = transcript.api_of(self.request.url.path)
        if "events" in answer:
            text = transcript.stream_answer(api, recording.answer_bytes(answer))
        elif "json" in answer:
            text = transcript.answer_of(api, answer["json"])
        else:
            text = transcript.text_of(recording.answer_bytes(answer))
        seconds_ = latency if isinstance(latency, int | float) else None
        self.note(text, usage, seconds_, stream="events" in answer)

    def _live(
        self,
        request: Any,
        streaming: bool,
        wrap_stream: Callable[[Any, StreamWatch], None],
        keep: Callable[[dict[str, Any], float, float | None], None] | None,
    ) -> Generator[Step, Any, Any]:
        """The request sent, with its retries; ``keep`` takes the answer to record it."""
        __tracebackhide__ = True
        if keep is not None:
            recording.readable_encodings(request)
        if self.model.provider == "simulator" and self.ctx is not None and self.ctx.nodeid:
            # the simulator draws its chance rules per test (simulator.handler.TEST_HEADER)
            request.headers[TEST_HEADER] = _header_id(self.ctx.nodeid)
        attempt = 0
        earlier: list[str] = []  # what the attempts before this one got, for its failure
        while True:
            attempt += 1
            held = yield from self._gates(attempt - 1)
            try:
                self._set_timeouts(request)
                if self.tally is not None:
                    # counted as sent: a request refused before (cooldown, deadline) is not
                    first = int(attempt == 1)
                    self.tally.count(requests=first, attempts=1, retries=1 - first)
                started = time.monotonic()
                self.answered = False
                response = yield Send(request)
                status = self.status = response.status_code
                self.answered = True
                if status < 400 and _is_event_stream(response):
                    self._verified(held)
                    watch = StreamWatch(self, held.lease, started, response, keep)
                    wrap_stream(response, watch)
                    held.lease = None
                    return response
                # a whole answer within the read timeout (a watched one: as its client reads it)
                limit = request.extensions.get("timeout", {}).get("read")
                body = yield Read(response, None if self.route.observe else limit)
            except self.errors as exc:
                self.answered = False
                held.release()
                if self.route.observe:
                    raise  # as its client would see it: the client decides what follows
                timed_out = "Timeout" in type(exc).__name__
                if timed_out and self.tally is not None:
                    self.tally.count(timeouts=1)
                what = f"{self.name}: {type(exc).__name__}: {exc}"
                what += _after(earlier, type(exc).__name__)
                if timed_out and (left := self._left()) is not None and left <= 0.01:
                    pytest.fail(f"{what}: no answer within {self._budget()}", pytrace=False)
                earlier.append(type(exc).__name__)
                yield from self._wait_to_retry(attempt, None, what)
                continue
            except BaseException:
                held.release()
                raise
            verdict = classify(status, body, model=self.model.model)
            if self.route.observe and verdict is not Verdict.OK:
                verdict = Verdict.FAIL  # watched only: its client retries, or not
            if verdict is Verdict.UNAVAILABLE and not self._model_wide(request, status, body):
                verdict = Verdict.FAIL  # the test's own key, not the model's
            if verdict is Verdict.OK or verdict is Verdict.FAIL:
                self._verified(held)
                held.release()
                self._record_body(body, started, response)
                if streaming and verdict is Verdict.OK and not self.route.observe:
                    self._not_a_stream(response, body)
                if keep is not None:
                    kind = response.headers.get("content-type", "")
                    keep(recording.body_entry(status, kind, body), time.monotonic() - started, None)
                return response
            code, message = error_of(body)
            cause = f"HTTP {status} {error_text(code, message)}{request_id(response.headers)}"
            if verdict is Verdict.UNAVAILABLE:
                self.answered = False  # a refused key or quota: not an answer to record
                # marked before the first-request probe is let go: a worker waiting for it
                # must find the model unavailable, not send a second request with a bad key
                try:
                    if self.coordinator is not None:  # a file every worker reads: no key
                        self.coordinator.mark_unavailable(self.name, redact(cause, self.model))
                finally:
                    held.release()
                judge = self.route.role == "judge"
                rest = "the tests that ask it" if judge else "its remaining tests"
                pytest.fail(
                    f"{'the judge ' * judge}{self.name} is unavailable: {cause}; {rest} are "
                    "skipped",
                    pytrace=False,
                )
            held.release()
            if status == 429 and self.tally is not None:
                self.tally.count(rate_limited=1)
            hinted = server_wait(response.headers)
            if status == 429 and hinted and self.coordinator is not None:
                # every worker waits it out: never longer than a wait we would accept
                cooldown = min(hinted, self.policy.max_wait)
                self.coordinator.start_cooldown(self.name, time.time() + cooldown)
            what = f"rate-limited by {self.name}" if status == 429 else f"{self.name}: {cause}"
            what += _after(earlier, f"HTTP {status}")
            earlier.append(f"HTTP {status}")
            yield from self._wait_to_retry(attempt, hinted, what)

    def _wait_to_retry(
        self, attempt: int, hinted: float | None, what: str
    ) -> Generator[Step, Any, None]:
        __tracebackhide__ = True
        policy = self.policy
        plural = "s" * (attempt != 1)
        if attempt >= policy.attempts:
            pytest.fail(f"{what}: gave up after {attempt} attempt{plural}", pytrace=False)
        if hinted is not None and hinted > policy.max_wait:
            pytest.fail(
                f"{what}: gave up after {attempt} attempt{plural}; retry-after "
                f"{seconds(hinted)} exceeds the longest wait allowed "
                f"({seconds(policy.max_wait)}, --llm-max-wait)",
                pytrace=False,
            )
        if hinted is not None:
            wait, said = hinted, f"retry-after {seconds(hinted)}"
        else:
            wait = backoff(
                attempt, policy.backoff_initial, min(policy.backoff_max, policy.max_wait)
            )
            said = f"backoff {seconds(wait)}"
        self._may_wait(wait, what, attempt, said)
        yield Sleep(wait)

    def _not_a_stream(self, response: Any, body: bytes) -> None:
        """A stream was asked for and a plain answer came: fail, saying what came (a JSON
        completion from a server that ignores ``stream``, an HTML page, garbage), rather
        than let the client read it as an empty stream."""
        __tracebackhide__ = True
        kind = response.headers.get("content-type") or "no content-type"
        snippet = body[:200].decode("utf-8", "replace")
        pytest.fail(
            f"{self.name}: asked for a stream, but the answer is not an event stream "
            f"(HTTP {response.status_code}, {kind}): {snippet!r}",
            pytrace=False,
        )

    def _model_wide(self, request: Any, status: int, body: bytes) -> bool:
        """Whether a refusal (unknown model, a refused key, no quota or credit) is the
        model's, for the rest of the session: not a refusal of the key (401/403, a 402, a
        gateway's 400 for a key it cannot check) to a request that carried other credentials
        than the model's configured key (a test checking what a bad key does)."""
        refused_key = status in (401, 402, 403) or (
            status == 400 and error_of(body)[0] in KEY_REFUSED_KINDS
        )
        if not refused_key:
            return True
        return credentials_of(request) == credentials_of_model(self.model)

    def _verified(self, held: _Held) -> None:
        """The model answered for real: let everyone past the first-request gate."""
        if held.probe is not None and self.coordinator is not None:
            self.coordinator.mark_verified(self.name)
            held.probe.release()
            held.probe = None

    def _record_body(self, body: bytes, started: float, response: Any) -> None:
        """Count a whole answer's latency, tokens and cost in its row, and put it in the
        test's transcript."""
        tally = self.tally
        if tally is None:
            return
        latency = time.monotonic() - started
        tally.record("latencies", latency)
        noting = bool(transcript.chars())
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser
            if noting:
                self.note(transcript.text_of(body), None, latency)
            return
        if not isinstance(data, dict):
            if noting:
                self.note(transcript.answer_of("other", data), None, latency)
            return
        usage, cost = usage_from_body(data), None
        if response.status_code < 300:  # an error is not billed, whatever it says
            cost = cost_in(data, cost_path(self.model))
            if cost is None and self.model.cost_header:
                cost = cost_value(response.headers.get(self.model.cost_header))
        if usage is not None or cost is not None:
            account(self.name, tally, usage or Usage(), cost)
        if noting:
            api = transcript.api_of(self.request.url.path)
            self.note(transcript.answer_of(api, data), usage, latency)


@functools.lru_cache(maxsize=64)
def _header_id(nodeid: str) -> str:
    """A test's id as a header carries it (ASCII), once per test, not once per request."""
    return quote(nodeid, safe="/:[]-_.")


def cost_path(model: Model) -> tuple[str, ...]:
    """The dotted field where ``model``'s answers say their cost, as its parts."""
    return _parts(model.cost_field)


@functools.lru_cache(maxsize=64)
def _parts(field: str) -> tuple[str, ...]:
    """``usage.cost`` as ``("usage", "cost")``: split once per field, not per answer."""
    return tuple(field.split(".")) if field else ()


def account(model: str, tally: context.Tally, usage: Usage, cost: float | None = None) -> None:
    """Count a request's tokens in its row and, under a budget, its cost for the session:
    the ``cost`` its answer reported, else its tokens at the model's rates. An answer's
    reported cost and tokens are counted apart too: the report prices only the rest."""
    tally.count(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
    )
    if cost is not None:
        tally.count(
            reported=1,
            reported_cost_nanousd=round(cost * context.NANO),
            reported_input_tokens=usage.input_tokens,
            reported_output_tokens=usage.output_tokens,
            reported_cached_tokens=usage.cached_tokens,
        )
    limits = context.limits()
    if limits is None or limits.budget is None:
        return
    if cost is not None:
        limits.coordinator.add_cost(cost)
        return
    rates = limits.rates.get(model)
    if rates is not None:
        per_input, per_output, per_cached = rates
        uncached = max(usage.input_tokens - usage.cached_tokens, 0)
        cost = uncached * per_input + usage.cached_tokens * per_cached
        limits.coordinator.add_cost(cost + usage.output_tokens * per_output)


def _json_body(request: Any) -> dict[str, Any] | None:
    """The request's JSON object body, parsed once per request (and only when it may
    name a model or ask for a stream)."""
    content = request.content
    if b'"model"' not in content and b'"stream"' not in content:
        return None
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _after(earlier: list[str], now: str) -> str:
    """`` (after HTTP 429, HTTP 429)``: what the earlier attempts got (the last five), when
    one of them got something else than this one (a timeout must not hide the 429s before
    it; "rate-limited" says the 429s of a run of them)."""
    if all(got == now for got in earlier):
        return ""
    shown = earlier[-5:]
    more = f"{len(earlier) - len(shown)} more, " if len(earlier) > len(shown) else ""
    return f" (after {more}{', '.join(shown)})"


def _is_event_stream(response: Any) -> bool:
    return "text/event-stream" in response.headers.get("content-type", "")


class StreamWatch:
    """Follows a streamed answer: usage, first token, completion; frees the slot at close."""

    def __init__(
        self,
        exchange: Exchange,
        lease: Lease | None,
        started: float,
        response: Any,
        keep: Callable[[dict[str, Any], float, float | None], None] | None = None,
    ) -> None:

        self.name = exchange.name
        self.exchange = exchange
        self.ctx = exchange.ctx
        self.tally = exchange.tally
        self.observe = exchange.route.observe
        self.lease = lease
        self.started = started
        self.tracker: StreamTracker | None = StreamTracker(cost_path=cost_path(exchange.model))
        encoding = response.headers.get("content-encoding", "").lower()
        self.decoder: Any = None
        if encoding in ("gzip", "deflate"):
            self.decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)
        elif encoding not in ("", "identity"):
            self.tracker = None  # cannot read it: no usage, no cut detection
        self.closed = False
        #: recording: the stream's decoded bytes, kept once it completes
        self.keep = keep if self.tracker is not None else None
        self.unrecorded = (
            f"its content-encoding {encoding!r} cannot be read"
            if keep is not None and self.keep is None
            else None
        )
        self.captured: list[bytes] = []
        #: the stream's decoded bytes, for its text in the test's transcript
        self.heard: bytearray | None = (
            bytearray() if self.tracker is not None and self.ctx and transcript.chars() else None
        )
        self.status = response.status_code
        self.content_type = response.headers.get("content-type", "")
        if self.ctx is not None:
            self.ctx.closers.append(self.close)  # an abandoned stream frees its slot at test end

    def chunk(self, data: bytes) -> None:
        if self.tracker is not None:
            decoded = self.decoder.decompress(data) if self.decoder else data
            self.tracker.feed(decoded)
            if self.keep is not None:
                self.captured.append(decoded)
            heard = self.heard
            if heard is not None and len(heard) < transcript.STREAM_BYTES:
                heard += decoded[: transcript.STREAM_BYTES - len(heard)]

    def wants_rest(self) -> bool:
        """Recording a stream its client closes before the end: the rest is read first, so
        that a replay has the whole answer."""
        tracker = self.tracker
        return (
            self.keep is not None
            and tracker is not None
            and not (tracker.done or tracker.error)
            and not self.closed
        )

    def ended(self) -> None:
        """The server's stream is over; without its final event, the answer is cut."""
        __tracebackhide__ = True
        tracker = self.tracker
        cut = tracker is not None and not tracker.done and tracker.error is None
        if cut and not self.observe:
            self.close()
            pytest.fail(f"stream from {self.name} ended before completion", pytrace=False)
        self._kept()

    def _kept(self) -> None:
        """Recording: a complete stream (its client may stop reading at the final event,
        and close it) is kept, once."""
        tracker, keep = self.tracker, self.keep
        if keep is None or tracker is None or not (tracker.done or tracker.error):
            return
        self.keep = None
        ttft = tracker.first_token_at
        keep(
            recording.stream_entry(self.status, self.content_type, b"".join(self.captured)),
            time.monotonic() - self.started,
            None if ttft is None else ttft - self.started,
        )

    def broke(self, exc: BaseException) -> None:
        __tracebackhide__ = True
        self.close()
        if self.observe:
            raise exc  # as its client would see it
        pytest.fail(
            f"stream from {self.name} ended before completion ({type(exc).__name__})",
            pytrace=False,
        )

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._kept()
        if self.keep is not None:
            self.unrecorded = "it ended before its final event"
        if self.unrecorded is not None:
            recording.not_recorded(
                self.name, f"a streamed answer was not recorded: {self.unrecorded}"
            )
        if self.lease is not None:
            self.lease.release()
        tally = self.tally
        if tally is None:
            return
        latency = time.monotonic() - self.started
        tally.record("latencies", latency)
        tracker = self.tracker
        if self.heard is not None and tracker is not None:
            api = transcript.api_of(self.exchange.request.url.path)
            text = transcript.stream_answer(api, bytes(self.heard))
            if len(self.heard) >= transcript.STREAM_BYTES:
                text += f"\n[only the stream's first {transcript.STREAM_BYTES:,} bytes were read]"
            if not (tracker.done or tracker.error):
                text += "\n[the stream ended before its final event]"
            self.heard = None
            self.exchange.note(text, tracker.usage, latency, stream=True)
        if tracker is not None:
            if tracker.first_token_at is not None:
                tally.record("ttft", tracker.first_token_at - self.started)
            if tracker.usage is not None or tracker.cost is not None:
                # a cost in a header came before the answer was written: only the stream's
                # own word on it counts
                account(self.name, tally, tracker.usage or Usage(), tracker.cost)
        context.checkpoint(self.ctx)
