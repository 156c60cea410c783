"""Mutable simulator state shared by all handler threads: decisions, counters and stats.

Everything here is plain logic behind one lock and knows nothing about HTTP, so the
handler stays a thin translation layer and each decision (rate limit, fault, reply,
latency) has exactly one place where it is made.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import tools
from .config import ModelConfig, SimulatorConfig
from .wire import make_reply

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .config import Fault, Rule
    from .wire import Conversation, Reply, ToolCall

RPM_WINDOW_SECONDS = 60.0
# Served when the config lists no models: any model id is accepted with default knobs.
_DEFAULT_MODEL = ModelConfig()


@dataclass(frozen=True)
class RetryAfter:
    """How long until a rate-limited client may retry, as the two headers spell it."""

    seconds: int
    milliseconds: int

    @classmethod
    def from_seconds(cls, seconds: float) -> RetryAfter:
        return cls(math.ceil(seconds), math.ceil(seconds * 1000))


class SimulatorState:
    """Counters and decisions for one simulator; safe to use from many threads."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._rng = random.Random(config.seed)
        self._admitted: defaultdict[str, deque[float]] = defaultdict(deque)
        self._fault_counts: Counter[tuple[str, int]] = Counter()
        self._requests: Counter[str] = Counter()
        self._statuses: Counter[int] = Counter()
        self._faults: defaultdict[str, Counter[str]] = defaultdict(Counter)
        #: (test, rule) -> how many times a chance rule was drawn for that test
        self._draws: Counter[tuple[str, str]] = Counter()
        self._in_flight = 0
        self._max_in_flight = 0
        self._in_flight_by_model: Counter[str] = Counter()
        self._max_in_flight_by_model: Counter[str] = Counter()

    def model_config(self, model: str) -> ModelConfig | None:
        """Knobs for `model`, or None when the config lists models and this is not one."""
        if not self.config.models:
            return _DEFAULT_MODEL
        return self.config.models.get(model)

    def count_request(self, model: str) -> None:
        with self._lock:
            self._requests[model] += 1

    def record_status(self, status: int) -> None:
        with self._lock:
            self._statuses[status] += 1

    def admit(self, model: str, knobs: ModelConfig) -> RetryAfter | None:
        """Take a slot in the model's sliding 60 s window, or say when the next one frees."""
        if knobs.rpm == 0:
            return None
        now = time.monotonic()
        with self._lock:
            window = self._admitted[model]
            while window and window[0] <= now - RPM_WINDOW_SECONDS:
                window.popleft()
            if len(window) >= knobs.rpm:
                return RetryAfter.from_seconds(window[0] + RPM_WINDOW_SECONDS - now)
            window.append(now)
            return None

    def pick_fault(self, model: str, knobs: ModelConfig, prompt: str) -> Fault | None:
        """Advance every fault counter this request counts for; return the first that fires.

        All counters advance even when an earlier fault fires, so `every = 7` means the 7th,
        14th, ... request of the model regardless of what the other faults do.
        """
        chosen = None
        with self._lock:
            for index, fault in enumerate(knobs.faults):
                if fault.match is not None and not fault.match.search(prompt):
                    continue
                key = (model, index)
                self._fault_counts[key] += 1
                if chosen is None and fault.fires_on(self._fault_counts[key]):
                    chosen = fault
            if chosen is not None:
                self._faults[model][chosen.kind] += 1
        return chosen

    def latency(self, knobs: ModelConfig) -> float:
        low, high = knobs.latency
        if low == high:
            return low
        with self._lock:
            return self._rng.uniform(low, high)

    def reply(self, knobs: ModelConfig, conversation: Conversation, test: str = "") -> Reply:
        """The whole answer: its text, tool calls and thinking (when the request asks for
        it: the rule's ``thinking``, else a line about the prompt), cut to the request's
        limit."""
        rule = self._rule(knobs, conversation, test)
        text, calls = self._answer(knobs, conversation, rule)
        thinking = ""
        if conversation.thinking:
            given = rule.thinking if rule is not None else None
            prompt = conversation.last_user_text
            thinking = given if given is not None else f"The user asks: {prompt[:80]}"
        return make_reply(text, conversation.max_tokens, calls, thinking)

    def _rule(self, knobs: ModelConfig, conversation: Conversation, test: str = "") -> Rule | None:
        """The first model rule or global rule that answers ``conversation``, if one does
        (one with a ``p`` below 1 only as often as its chance says)."""
        prompt = conversation.last_user_text
        for rule in (*knobs.rules, *self.config.rules):
            if (
                _fits(rule, conversation)
                and rule.matches(prompt, conversation.system_text, conversation.transcript)
                and (rule.p >= 1 or self._chance(rule, test))
            ):
                return rule
        return None

    def _chance(self, rule: Rule, test: str) -> bool:
        """Whether a rule with ``p`` applies this time: the seed, the test (its id, a run
        of a repeated test has its own) and how many times it was drawn for that test
        decide, so a run is reproduced with the same seed, whatever ran in parallel."""
        digest = hashlib.sha256(test.encode("utf-8", "surrogateescape")).hexdigest()
        with self._lock:  # (a digest: long ids stay apart)
            key = (digest, rule.where)
            drawn = self._draws[key]
            self._draws[key] = drawn + 1
        draw = random.Random(f"{self.config.seed}|{digest}|{rule.where}|{drawn}").random()
        return draw < rule.p

    def _answer(
        self, knobs: ModelConfig, conversation: Conversation, rule: Rule | None
    ) -> tuple[str, tuple[ToolCall, ...]]:
        """The answer's text and tool calls: the wrong answer, else the first model rule or
        global rule that matches and fits the request's tools, else a call the request
        demands (``tool_choice``; arguments made from the tool's schema), else the default
        reply."""
        prompt = conversation.last_user_text
        if any(pattern.search(prompt) for pattern in knobs.wrong):
            return knobs.wrong_reply.replace("{model}", conversation.model), ()
        if rule is not None:
            calls = _calls(rule, conversation)
            if rule.json is not None:
                text = json.dumps(rule.json, ensure_ascii=False)
            else:
                text = rule.reply.replace("{model}", conversation.model)
            return _shaped(text, conversation, rule), calls
        choice = conversation.tool_choice
        if choice is not None and choice.forces:
            tool = next(t for t in conversation.tools if choice.name in (None, t.name))
            arguments = tools.example(tool.schema)  # a tool without parameters: {}
            return "", (tools.call(tool.name, arguments if isinstance(arguments, dict) else {}),)
        if knobs.strict or (knobs.strict is None and self.config.strict):
            raise NoRule(
                f"no simulator rule answers this prompt to {conversation.model} "
                f"(strict = true): {prompt[:80]!r}{'...' * (len(prompt) > 80)}"
            )
        return _shaped(
            self.config.default_reply.replace("{model}", conversation.model), conversation
        ), ()

    @contextmanager
    def in_flight(self, model: str | None) -> Iterator[Callable[[], None]]:
        """Count a request as in flight for the duration of the block, or until the
        callable it yields is called: the handler calls it just before the response's last
        bytes go out, because a client that has them may send its next request before this
        thread leaves the block (and a cap would seem broken by a request that is over)."""
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            if model is not None:
                self._in_flight_by_model[model] += 1
                self._max_in_flight_by_model[model] = max(
                    self._max_in_flight_by_model[model], self._in_flight_by_model[model]
                )
        left = False

        def leave() -> None:
            nonlocal left
            with self._lock:
                if left:
                    return
                left = True
                self._in_flight -= 1
                if model is not None:
                    self._in_flight_by_model[model] -= 1

        try:
            yield leave
        finally:
            leave()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "in_flight_by_model": dict(self._in_flight_by_model),
                "max_in_flight_by_model": dict(self._max_in_flight_by_model),
                "statuses": {str(status): n for status, n in sorted(self._statuses.items())},
                "faults": {model: dict(kinds) for model, kinds in self._faults.items()},
            }

    def reset(self) -> None:
        """Forget counters, rate windows and stats; requests still in flight stay counted."""
        with self._lock:
            self._admitted.clear()
            self._fault_counts.clear()
            self._requests.clear()
            self._statuses.clear()
            self._faults.clear()
            self._draws.clear()
            self._max_in_flight = self._in_flight
            live = {model: n for model, n in self._in_flight_by_model.items() if n}
            self._in_flight_by_model = Counter(live)
            self._max_in_flight_by_model = Counter(live)
            self._rng.seed(self.config.seed)


class NoRule(Exception):
    """The simulator cannot answer as configured (strict mode and no rule answers, a rule's
    JSON against the request's schema): a 400 that says why."""


def _calls(rule: Rule, conversation: Conversation) -> tuple[ToolCall, ...]:
    """A rule's calls as the request allows them (one, without parallel calls; only the
    named tool's), each checked against its tool's schema: a rule's arguments that break
    it are the config's mistake."""
    choice = conversation.tool_choice
    made = rule.tool_calls
    if choice is not None and choice.mode == "named":
        made = tuple(call for call in made if call[0] == choice.name)
    if choice is not None and not choice.parallel:
        made = made[:1]
    schemas = {tool.name: tool.schema for tool in conversation.tools}
    for name, arguments in made:
        if (problem := tools.violation(dict(arguments), schemas.get(name))) is not None:
            raise NoRule(
                f"{rule.where}: its call to {name} does not follow the tool's schema: {problem}"
            )
    return tuple(tools.call(name, arguments) for name, arguments in made)


def _shaped(text: str, conversation: Conversation, rule: Rule | None = None) -> str:
    """The answer's text in the shape the request asks for: with a JSON schema, text that
    validates (the rule's or the default reply, when it does; else a value made from the
    schema); a rule's ``json`` that does not validate is the config's mistake. JSON mode
    without a schema: text that is a JSON object, else ``{"reply": text}``."""
    schema = conversation.schema
    if not text and rule is not None and rule.tool_calls:
        return text
    if schema is None and conversation.json_mode:
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        return text if isinstance(value, dict) else json.dumps({"reply": value}, ensure_ascii=False)
    if schema is None:
        return text
    try:
        problem = tools.violation(json.loads(text), schema)
    except ValueError:
        problem = "not JSON"
    if problem is None:
        return text
    if rule is not None and rule.json is not None:
        raise NoRule(f"{rule.where}: its json does not follow the request's schema: {problem}")
    return json.dumps(tools.example(schema), ensure_ascii=False, allow_nan=False)


def _fits(rule: Rule, conversation: Conversation) -> bool:
    """Whether a rule can answer this request: one that names a tool needs it offered, one
    that calls tools needs tools allowed; a request that demands a call (of one tool) takes
    only a rule that makes it."""
    offered = [tool.name for tool in conversation.tools]
    if rule.tool is not None and not any(rule.tool.search(name) for name in offered):
        return False
    choice = conversation.tool_choice
    mode = choice.mode if choice is not None else "auto"
    if rule.tool_calls and (mode == "none" or any(n not in offered for n, _ in rule.tool_calls)):
        return False  # no calls allowed, or one to a tool the request does not offer
    if mode == "required":
        return bool(rule.tool_calls)
    if mode == "named" and choice is not None:
        return any(name == choice.name for name, _ in rule.tool_calls)
    return True
