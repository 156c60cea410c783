"""The :class:`~pytest_llm_matrix.calls.limits.Coordinator` of sessions on many machines:
their slots, cooldowns, rpm windows, unavailable marks, first-request gates, budget and
shared records in one Redis (``--llm-coordinator=redis://...``).

Every key lives under ``llm-matrix:<run id>:`` and expires a day after its last write, so
the jobs of one pipeline (one run id) share their state and unrelated runs do not.

- **Slots** are leases: members of a sorted set per cap (``slots:global``,
  ``slots:model:<alias>``) scored by their expiry. Taking one is one Lua script that drops
  expired leases and takes a slot of the model's cap and of the global cap together, or
  neither. A thread of each process pushes the expiry of the leases it holds forward every
  ``LEASE_TTL / 3`` seconds, so the slots of a process or machine that dies come back within
  ``LEASE_TTL`` (10 s) of its last refresh.
- **Fairness** is kept as the file backend keeps it: callers poll (every few ms at most),
  and a slot released while another caller was turned away stays closed to everyone for a
  short hand-off (``limits.HANDOFF``), so the releaser's own next request cannot take it
  back at once; whoever polls first afterwards gets it.
- **Rpm windows** are sorted sets of request times; **cooldowns** keep the latest end; **unavailable
  marks** keep the first reason (``HSETNX``); the **first-request gate** is a lease of one; a
  **key check** under way is a key that expires by itself; the **budget** is one ``INCRBYFLOAT``;
  **records** are read-modify-written under ``WATCH``.
- **Clocks:** every time compared (lease expiry, rpm windows, hand-offs) is Redis's
  ``TIME``, and cooldowns are keys' remaining lives: the machines' clocks may differ.
- **Records** (repeated tests' runs) are the session's: two jobs of a run that both run a
  test judge it each on their own runs.
- **Redis lost mid-run:** a dropped connection is tried again at once (redis-py's retries),
  and every call has a 2 s socket timeout. A call that still fails starts an *outage*: a
  thread of the process asks Redis every ``PROBE_EVERY`` seconds whether it answers again,
  and every call waits for that answer, for at most ``OUTAGE_WAIT`` seconds from the start
  of the outage (or of the call). A restart or a failover shorter than that costs no test;
  a Redis that stays down fails each call at once after that, with a message naming the
  coordinator (never its password), until it answers again: requests never go out without
  the caps, a stalled Redis ends the run in seconds rather than a timeout per test, and
  calls go on as soon as Redis is back.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Final

import pytest
import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from pytest_llm_matrix.calls.limits import HANDOFF, RPM_WINDOW
from pytest_llm_matrix.config.options import scrubbed, shown_url

__all__ = ["RedisCoordinator", "connect", "shown_url"]

#: Seconds a lease lives without a refresh: the bound on how long a dead process's slots
#: stay taken.
LEASE_TTL: Final = 10.0
#: Seconds every key lives after its last write: the run's state goes away on its own.
KEY_TTL: Final = 86400
TIMEOUT: Final = 2.0
#: Seconds calls wait for a Redis that stopped answering to answer again (see _call);
#: ``PYTEST_LLM_MATRIX_REDIS_OUTAGE_WAIT`` shortens it (the tests use a short one).
OUTAGE_WAIT: Final = 10.0


def outage_wait() -> float:
    """OUTAGE_WAIT, or a shorter wait from the environment (a sane one only)."""
    try:
        value = float(os.environ.get("PYTEST_LLM_MATRIX_REDIS_OUTAGE_WAIT", OUTAGE_WAIT))
    except ValueError:
        return OUTAGE_WAIT
    return value if 0 < value <= OUTAGE_WAIT else OUTAGE_WAIT


#: Seconds between two questions to a Redis that stopped answering: whether it is back.
PROBE_EVERY: Final = 0.1
#: Times a dropped connection is tried again (with backoff up to 0.5 s) before a call fails.
RECONNECTS: Final = 3

#: The server's clock, in seconds: every time the scripts compare is Redis's, so the
#: machines' clocks may disagree.
_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"

# KEYS: the scopes to take a slot in (model, then global); ARGV: lease ttl, lease id, then
# one cap per key, then the key ttl. Both or neither; returns the server time taken, or 0.
_ACQUIRE = (
    _NOW
    + """
local lease, id, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[#ARGV])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local closed = tonumber(redis.call('GET', key .. ':handoff') or '0')
  if redis.call('ZCARD', key) >= tonumber(ARGV[2 + i]) or closed > now then
    redis.call('SET', key .. ':contended', now, 'EX', ttl)
    return '0'
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, id)
  redis.call('EXPIRE', key, ttl)
end
return tostring(now)
"""
)
# KEYS: the scopes the lease holds; ARGV: lease id, the server time it was taken, hand-off.
_RELEASE = (
    _NOW
    + """
local id, taken, handoff = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  if redis.call('ZREM', key, id) == 1 and handoff > 0 then
    local contended = tonumber(redis.call('GET', key .. ':contended') or '0')
    if contended >= taken then
      redis.call('SET', key .. ':handoff', now + handoff, 'PX', math.ceil(handoff * 1000) + 1)
    end
  end
end
return 1
"""
)
# KEYS: the slot keys of held leases; ARGV: lease ttl, then the lease id of each key.
_REFRESH = (
    _NOW
    + """
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
end
return 1
"""
)
# KEYS: the model's cooldown; ARGV: its length in ms. The later end wins (Redis keeps it).
_COOLDOWN = """
local wanted = tonumber(ARGV[1])
if wanted > redis.call('PTTL', KEYS[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', wanted)
end
return 1
"""
# KEYS: the model's window; ARGV: rpm, window, a unique member, key ttl.
_RPM = (
    _NOW
    + """
local rpm, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < rpm then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""
)


def connect(url: str) -> redis.Redis:
    """A client of the Redis at ``url``; ``ValueError`` when ``url`` is no Redis URL, the
    error of the first call when it does not answer (its text without the URL's
    credentials: redis-py names the host it tried, part of a password in a URL it read
    wrongly)."""
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True
        )
    except ValueError:
        raise ValueError("not a Redis URL") from None  # its text may quote the password
    try:
        client.ping()
    except Exception as error:  # a refused connection, a wrong password, an unknown option
        client.close()
        raise _scrubbed(error, url) from None
    return client


def _scrubbed(error: Exception, url: str) -> Exception:
    """``error`` of the same type, its text without the credentials of ``url``."""
    text = scrubbed(str(error), url)
    try:
        return type(error)(text)
    except Exception:  # a type that takes other arguments
        return RuntimeError(text)


class _Lease:
    __slots__ = ("_coordinator", "_held", "_id", "_taken")

    def __init__(self, coordinator: RedisCoordinator, held: list[str]) -> None:
        self._coordinator = coordinator
        self._held = held
        self._id = uuid.uuid4().hex
        self._taken = 0.0  # the server's time it was taken

    def release(self) -> None:
        self._coordinator._release(self)


class RedisCoordinator:
    """Shared state of a run in Redis (see the module doc)."""

    def __init__(
        self,
        url: str,
        run_id: str,
        global_cap: int | None,
        *,
        session: str = "",
        handoff: float = HANDOFF,
    ) -> None:
        self._url = url
        self._where = f"the llm-matrix coordinator {shown_url(url)}"
        self._prefix = f"llm-matrix:{run_id}:"
        #: repeated tests' records are one session's: two jobs of a run that both run a
        #: test (a matrix over Python versions) judge it each on their own runs
        self._session = session
        self._global_cap = global_cap
        self._handoff = handoff
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT,
            socket_connect_timeout=TIMEOUT,
            decode_responses=True,
            # a dropped connection (a restart, a failover) is tried again for about a second
            retry=Retry(
                ExponentialBackoff(cap=0.5, base=0.05),
                RECONNECTS,
                supported_errors=(redis.ConnectionError,),  # not a timeout: that is a stall
            ),
            retry_on_error=[redis.ConnectionError],
        )
        # asks whether Redis answers again after an outage: a failure at once, no retries
        self._probe_client = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry=Retry(NoBackoff(), 0)
        )
        self._up = threading.Event()  # cleared while Redis does not answer (an outage)
        self._up.set()
        self._outage_since = 0.0  # monotonic time the outage under way began
        self._down_because = ""
        self._prober: threading.Thread | None = None
        self._closing = False  # calls no longer wait for Redis
        self._acquire = self._client.register_script(_ACQUIRE)
        self._release_script = self._client.register_script(_RELEASE)
        self._refresh_script = self._client.register_script(_REFRESH)
        self._cooldown = self._client.register_script(_COOLDOWN)
        self._rpm = self._client.register_script(_RPM)
        self._lock = threading.Lock()
        self._leases: dict[str, _Lease] = {}
        self._verified: set[str] = set()
        self._unavailable: dict[str, str] = {}
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    # -- errors ------------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        """``call()``, once Redis answers: during an outage (see the module doc) it waits
        for Redis until OUTAGE_WAIT seconds after the outage or the call began, whichever
        was earlier, then fails the test at once. Any other error fails the test too: a
        coordinator call raises nothing but ``pytest.fail``'s exception, which the
        controller's hooks catch (it never dies of the coordinator)."""
        __tracebackhide__ = True
        started = time.monotonic()
        while True:
            if not self._up.is_set():
                self._wait_for_redis(what, started)
            try:
                return call()
            except (redis.ConnectionError, redis.TimeoutError) as error:
                self._went_down(error)  # then wait for it, and call again
                continue
            except Exception as error:  # Redis refused it, or what it holds is not ours
                why = self._why(error)
            self._fail(what, why)  # outside the handler: the message alone, no chain

    def _wait_for_redis(self, what: str, started: float) -> None:
        __tracebackhide__ = True
        wait = outage_wait()
        left = min(self._outage_since, started) + wait - time.monotonic()
        if self._closing or left <= 0 or not self._up.wait(left):
            # the same text for every call: said once where messages are gathered
            self._fail(what, f"{self._down_because}; no answer within {wait:g} s")

    def _went_down(self, error: redis.RedisError) -> None:
        """Start an outage (unless one is under way) and the thread that ends it."""
        with self._lock:
            self._down_because = self._why(error)
            if self._up.is_set():
                self._outage_since = time.monotonic()
                self._up.clear()
            if self._prober is None:  # the prober clears this under the lock as it ends
                self._prober = threading.Thread(
                    target=_probe, args=(weakref.ref(self), self._stop),
                    name="llm-matrix-redis-probe", daemon=True,
                )  # fmt: skip
                self._prober.start()

    def _answers(self) -> bool:
        """Whether Redis answers now; if it does, the outage is over."""
        try:
            self._probe_client.ping()
        except redis.RedisError as error:
            self._down_because = self._why(error)
            return False
        with self._lock:
            self._up.set()
            self._prober = None
        return True

    def _why(self, error: Exception) -> str:
        return scrubbed(f"{type(error).__name__}: {error}", self._url)

    def _fail(self, what: str, why: str) -> None:
        __tracebackhide__ = True
        pytest.fail(
            f"{self._where}: {what} failed ({why}); requests stop rather than go out "
            "without the shared caps",
            pytrace=False,
        )

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    # -- slots -------------------------------------------------------------------------

    def try_acquire(self, model: str, model_cap: int | None) -> _Lease | None:
        keys, caps = [], []
        if model_cap is not None:
            if model_cap < 1:
                raise ValueError(f"model_cap must be at least 1, got {model_cap}")
            keys.append(self._key("slots", "model", model))
            caps.append(model_cap)
        if self._global_cap is not None:
            keys.append(self._key("slots", "global"))
            caps.append(self._global_cap)
        return self._take(keys, caps)

    def try_probe(self, model: str) -> _Lease | None:
        return self._take([self._key("slots", "probe", model)], [1])

    def _take(self, keys: list[str], caps: list[int]) -> _Lease | None:
        __tracebackhide__ = True
        lease = _Lease(self, keys)
        if keys:
            args: list[str | float] = [LEASE_TTL, lease._id, *caps, KEY_TTL]
            taken = float(self._call("taking a slot", lambda: self._acquire(keys=keys, args=args)))
            if not taken:
                return None
            lease._taken = taken
            with self._lock:
                self._leases[lease._id] = lease
            self._start_refresher()
        return lease

    def _release(self, lease: _Lease) -> None:
        with self._lock:
            held = self._leases.pop(lease._id, None)
        if held is None or not lease._held:
            return  # released already (release is idempotent), or it held nothing
        args: list[str | float] = [lease._id, lease._taken, self._handoff]
        self._call("giving back a slot", lambda: self._release_script(keys=lease._held, args=args))

    def _start_refresher(self) -> None:
        if self._refresher is not None and self._refresher.is_alive():
            return
        with self._lock:
            if self._refresher is None or not self._refresher.is_alive():
                self._refresher = threading.Thread(
                    target=_refresh, args=(weakref.ref(self), self._stop),
                    name="llm-matrix-leases", daemon=True,
                )  # fmt: skip
                self._refresher.start()

    def refresh(self) -> None:
        """Push the expiry of every lease this process holds forward."""
        with self._lock:
            leases = list(self._leases.values())
        keys = [key for lease in leases for key in lease._held]
        ids = [lease._id for lease in leases for _ in lease._held]
        if keys and self._up.is_set():
            # a failure is the next request's to say; this thread has no test to fail
            with contextlib.suppress(Exception):
                self._refresh_script(keys=keys, args=[LEASE_TTL, *ids])

    # -- model state -------------------------------------------------------------------

    def cooldown_until(self, model: str) -> float:
        """Kept as the key's remaining life, in Redis: no machine's clock is compared."""
        key = self._key("cooldown", model)
        left = self._call("reading a cooldown", lambda: self._client.pttl(key))
        return time.time() + int(left) / 1000 if isinstance(left, int) and left > 0 else 0.0

    def start_cooldown(self, model: str, until: float) -> None:
        key = self._key("cooldown", model)
        wanted = max(int((until - time.time()) * 1000), 0)
        if wanted:
            self._call("starting a cooldown", lambda: self._cooldown(keys=[key], args=[wanted]))

    def rpm_wait(self, model: str, rpm: int) -> float:
        if rpm < 1:
            raise ValueError(f"rpm must be at least 1, got {rpm}")
        key = self._key("rpm", model)
        args: list[str | float] = [rpm, RPM_WINDOW, uuid.uuid4().hex, KEY_TTL]
        return float(self._call("reserving a request", lambda: self._rpm(keys=[key], args=args)))

    def _write(self, what: str, key: str, write: Callable[[str], object]) -> None:
        """One write to ``key``, which then lives KEY_TTL more seconds."""

        def run() -> None:
            write(key)
            self._client.expire(key, KEY_TTL)

        self._call(what, run)

    def mark_unavailable(self, model: str, reason: str) -> None:
        self._write(
            "marking a model unavailable",
            self._key("unavailable"),
            lambda key: self._client.hsetnx(key, model, reason),
        )

    def unavailable(self, model: str) -> str | None:
        reason = self._unavailable.get(model)
        if reason is None:
            found = self._call(
                "reading unavailable models",
                lambda: self._client.hget(self._key("unavailable"), model),
            )
            if found is not None:
                reason = self._unavailable[model] = str(found)
        return reason

    def all_unavailable(self) -> dict[str, str]:
        found = self._call(
            "reading unavailable models", lambda: self._client.hgetall(self._key("unavailable"))
        )
        self._unavailable.update(found)
        return dict(found)

    def is_verified(self, model: str) -> bool:
        if model not in self._verified and self._call(
            "reading a first-request gate",
            lambda: self._client.sismember(self._key("verified"), model),
        ):
            self._verified.add(model)
        return model in self._verified

    def mark_verified(self, model: str) -> None:
        self._write(
            "opening a first-request gate",
            self._key("verified"),
            lambda key: self._client.sadd(key, model),
        )
        self._verified.add(model)

    def start_check(self, model: str, seconds: float) -> None:
        """A key that expires by itself: a checker that dies leaves no wait behind."""
        key, ttl = self._key("checking", model), max(int(seconds * 1000), 1)
        self._call("starting a key check", lambda: self._client.set(key, "1", px=ttl))

    def checking(self, model: str) -> bool:
        key = self._key("checking", model)
        return bool(self._call("reading a key check", lambda: self._client.exists(key)))

    def end_check(self, model: str) -> None:
        key = self._key("checking", model)
        self._call("ending a key check", lambda: self._client.delete(key))

    # -- the budget and records --------------------------------------------------------

    def add_cost(self, amount: float) -> None:
        self._write(
            "adding to the budget",
            self._key("spent"),
            lambda key: self._client.incrbyfloat(key, amount),
        )

    def spent(self) -> float:
        def read() -> float:
            value = self._client.get(self._key("spent"))
            return float(value) if value else 0.0

        spent: float = self._call("reading the budget", read)
        return spent

    def _record_key(self, name: str) -> str:
        return self._key("record", self._session, hashlib.sha256(name.encode()).hexdigest()[:24])

    def update_record(self, name: str, change: Callable[[str | None], str]) -> str:
        key = self._record_key(name)

        def update() -> str:
            with self._client.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(key)  # type: ignore[no-untyped-call]
                        old = pipe.get(key)
                        new = change(None if old is None else str(old))
                        pipe.multi()
                        pipe.set(key, new, ex=KEY_TTL)
                        pipe.execute()
                        return new
                    except redis.WatchError:
                        continue

        result: str = self._call("updating a shared record", update)
        return result

    def record(self, name: str) -> str | None:
        key = self._record_key(name)
        value = self._call("reading a shared record", lambda: self._client.get(key))
        return None if value is None else str(value)

    def close(self) -> None:
        """Give back the leases still held, unless Redis is down (they expire on their
        own): the session's end never waits for Redis."""
        self._closing = True
        self._stop.set()
        with self._lock:
            leases = list(self._leases.values())
        for lease in leases if self._up.is_set() else ():
            try:
                lease.release()
            except (Exception, pytest.fail.Exception):  # Redis gone: the leases expire
                break
        for client in (self._client, self._probe_client):
            with contextlib.suppress(Exception):
                client.close()


def _probe(owner: weakref.ref[RedisCoordinator], stop: threading.Event) -> None:
    """Ask Redis every PROBE_EVERY seconds whether it answers again, until it does."""
    while True:
        coordinator = owner()
        if coordinator is None or coordinator._answers():
            return
        del coordinator
        if stop.wait(PROBE_EVERY):
            return


def _refresh(owner: weakref.ref[RedisCoordinator], stop: threading.Event) -> None:
    while not stop.wait(LEASE_TTL / 3):
        coordinator = owner()
        if coordinator is None:
            return
        coordinator.refresh()
        del coordinator
