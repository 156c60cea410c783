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
- **Rpm windows** are sorted sets of request times; **cooldowns** keep the latest end;
  **unavailable marks** keep the first reason (``HSETNX``); the **first-request gate** is a
  lease of one; the **budget** is one ``INCRBYFLOAT``; **records** are read-modify-written
  under ``WATCH``.
- **Redis lost mid-run:** every call has a 2 s socket timeout, and a failed call fails the
  running test with a message naming the coordinator: requests never go out without the
  caps, and nothing hangs.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from pytest_llm_matrix.calls.limits import HANDOFF, RPM_WINDOW

#: Seconds a lease lives without a refresh: the bound on how long a dead process's slots
#: stay taken.
LEASE_TTL: Final = 10.0
#: Seconds every key lives after its last write: the run's state goes away on its own.
KEY_TTL: Final = 86400
TIMEOUT: Final = 2.0

# KEYS: the scopes to take a slot in (model, then global); ARGV: now, expiry, lease id,
# then one cap per key, then the key ttl. Both or neither.
_ACQUIRE = """
local now, expiry, id, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[#ARGV])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local closed = tonumber(redis.call('GET', key .. ':handoff') or '0')
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) or closed > now then
    redis.call('SET', key .. ':contended', now, 'EX', ttl)
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, expiry, id)
  redis.call('EXPIRE', key, ttl)
end
return 1
"""
# KEYS: the scopes the lease holds; ARGV: now, lease id, the time it was taken, hand-off.
_RELEASE = """
local now, id, taken, handoff = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
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
# KEYS: the model's cooldown; ARGV: until, key ttl. The later end wins.
_COOLDOWN = """
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
end
return 1
"""
# KEYS: the model's window; ARGV: now, rpm, window, a unique member, key ttl.
_RPM = """
local now, rpm, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < rpm then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def connect(url: str) -> redis.Redis:
    """A client of the Redis at ``url``; ``ConnectionError``/``ValueError`` when unusable."""
    client = redis.Redis.from_url(
        url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True
    )
    client.ping()
    return client


class _Lease:
    __slots__ = ("_coordinator", "_held", "_id", "_taken")

    def __init__(self, coordinator: RedisCoordinator, held: list[str], taken: float) -> None:
        self._coordinator = coordinator
        self._held = held
        self._id = uuid.uuid4().hex
        self._taken = taken

    def release(self) -> None:
        self._coordinator._release(self)


class RedisCoordinator:
    """Shared state of a run in Redis (see the module doc)."""

    def __init__(
        self, url: str, run_id: str, global_cap: int | None, *, handoff: float = HANDOFF
    ) -> None:
        self._url = url
        self._where = f"the llm-matrix coordinator {shown_url(url)}"
        self._prefix = f"llm-matrix:{run_id}:"
        self._global_cap = global_cap
        self._handoff = handoff
        self._client = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True
        )
        self._acquire = self._client.register_script(_ACQUIRE)
        self._release_script = self._client.register_script(_RELEASE)
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
        __tracebackhide__ = True
        try:
            return call()
        except redis.RedisError as error:
            pytest.fail(
                f"{self._where}: {what} failed ({type(error).__name__}: {error}); "
                "requests stop rather than go out without the shared caps",
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
        now = time.time()
        lease = _Lease(self, keys, now)
        if keys:
            args: list[str | float] = [now, now + LEASE_TTL, lease._id, *caps, KEY_TTL]
            taken = self._call("taking a slot", lambda: self._acquire(keys=keys, args=args))
            if not taken:
                return None
            with self._lock:
                self._leases[lease._id] = lease
            self._start_refresher()
        return lease

    def _release(self, lease: _Lease) -> None:
        with self._lock:
            held = self._leases.pop(lease._id, None)
        if held is None or not lease._held:
            return  # released already (release is idempotent), or it held nothing
        args: list[str | float] = [time.time(), lease._id, lease._taken, self._handoff]
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
        if not leases:
            return
        expiry = time.time() + LEASE_TTL
        pipe = self._client.pipeline(transaction=False)
        for lease in leases:
            for key in lease._held:
                pipe.zadd(key, {lease._id: expiry}, xx=True)
        with contextlib.suppress(redis.RedisError):  # the next request says so
            pipe.execute()

    # -- model state -------------------------------------------------------------------

    def cooldown_until(self, model: str) -> float:
        value = self._call(
            "reading a cooldown", lambda: self._client.get(self._key("cooldown", model))
        )
        try:
            return float(value) if value else 0.0
        except ValueError:
            return 0.0

    def start_cooldown(self, model: str, until: float) -> None:
        key = self._key("cooldown", model)
        self._call("starting a cooldown", lambda: self._cooldown(keys=[key], args=[until, KEY_TTL]))

    def rpm_wait(self, model: str, rpm: int) -> float:
        if rpm < 1:
            raise ValueError(f"rpm must be at least 1, got {rpm}")
        key = self._key("rpm", model)
        args: list[str | float] = [time.time(), rpm, RPM_WINDOW, uuid.uuid4().hex, KEY_TTL]
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

    # -- the budget and records --------------------------------------------------------

    def add_cost(self, amount: float) -> None:
        self._write(
            "adding to the budget",
            self._key("spent"),
            lambda key: self._client.incrbyfloat(key, amount),
        )

    def spent(self) -> float:
        value = self._call("reading the budget", lambda: self._client.get(self._key("spent")))
        return float(value) if value else 0.0

    def update_record(self, name: str, change: Callable[[str | None], str]) -> str:
        key = self._key("record", hashlib.sha256(name.encode()).hexdigest()[:24])

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
        key = self._key("record", hashlib.sha256(name.encode()).hexdigest()[:24])
        value = self._call("reading a shared record", lambda: self._client.get(key))
        return None if value is None else str(value)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            leases = list(self._leases.values())
        for lease in leases:
            try:
                lease.release()
            except BaseException:  # Redis gone: the leases expire on their own
                break
        self._client.close()


def _refresh(owner: weakref.ref[RedisCoordinator], stop: threading.Event) -> None:
    while not stop.wait(LEASE_TTL / 3):
        coordinator = owner()
        if coordinator is None:
            return
        coordinator.refresh()
        del coordinator
