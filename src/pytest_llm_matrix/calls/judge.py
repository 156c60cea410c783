"""The ``llm_judge`` fixture's judge: a configured model that grades answers.

The judge is one model for the whole run (``judge = "<alias>"`` in the config, or
``--llm-judge``), never parametrized over, never rewritten to the model under test. Its
requests take the exchange like every other request (its caps, retries, timeouts,
recordings), counted in a row of their own: the JSON report's ``judges``, a line under the
table, and ``--llm-max-cost``. Each verdict goes into the test's transcript.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_llm_matrix.calls import context, transcript
from pytest_llm_matrix.calls.client import LLM, ChatResult, LLMError
from pytest_llm_matrix.calls.exchange import Route

if TYPE_CHECKING:
    from pytest_llm_matrix.config.models import Model

#: The judge's instructions (its system prompt): replace ``llm_judge.system`` to change them.
SYSTEM: Final = (
    "You grade an answer against a rubric. Decide whether the answer meets every point of "
    "the rubric; judge only what the answer says. Reply with a JSON object and nothing "
    'else: {"pass": true or false, "reason": "one or two sentences saying why", '
    '"score": a number from 0 to 1}.'
)
#: The request's message; ``{rubric}``, ``{answer}`` and ``{context}`` are filled in.
TEMPLATE: Final = "Rubric:\n{rubric}\n\n{context}Answer to grade:\n{answer}"
CONTEXT: Final = "Context (what the answer replies to):\n{context}\n\n"
#: How much of a reply that is no verdict a failure quotes.
QUOTED: Final = 300


def account_of(alias: str) -> str:
    """The name of a judge's row among a test's auxiliary requests."""
    return f"judge:{alias}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the judge decided: truthy when the answer passed."""

    passed: bool
    reason: str
    score: float | None = None
    judge: str = ""
    raw: str = dataclasses.field(default="", repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "score": self.score}


class Judge:
    """Grades answers with the run's judge model: ``grade(answer, rubric, context=None)``.

    ``system`` and ``template`` are the prompt; a conftest may replace them (override the
    ``llm_judge`` fixture, asking for it, and set them).
    """

    def __init__(self, model: Model) -> None:
        self.model = model
        self.system = SYSTEM
        self.template = TEMPLATE
        about = {"kind": "judge", "alias": model.name, "model": model.model}
        self.client = LLM(model, route=Route(account=account_of(model.name), about=about))

    def __repr__(self) -> str:
        return f"<Judge {self.model.name} ({self.model.provider}:{self.model.model})>"

    def close(self) -> None:
        self.client.close()

    def _messages(self, answer: object, rubric: str, context_: object) -> list[dict[str, str]]:
        shown = "" if context_ is None else CONTEXT.format(context=_text(context_))
        user = self.template.format(rubric=rubric, answer=_text(answer), context=shown)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def grade(self, answer: object, rubric: str, *, context: object = None) -> Verdict:
        """Ask the judge whether ``answer`` meets ``rubric`` (``context``: what it replies
        to). An answer may be text, a ``ChatResult`` or any value (shown as JSON)."""
        __tracebackhide__ = True
        messages = self._messages(answer, rubric, context)
        try:
            result = self.client.chat(messages)
        except LLMError as error:
            pytest.fail(f"judge {self.model.name}: {error}", pytrace=False)
        return self._verdict(result)

    async def agrade(self, answer: object, rubric: str, *, context: object = None) -> Verdict:
        """The asynchronous twin of :meth:`grade`."""
        __tracebackhide__ = True
        messages = self._messages(answer, rubric, context)
        try:
            result = await self.client.achat(messages)
        except LLMError as error:
            pytest.fail(f"judge {self.model.name}: {error}", pytrace=False)
        return self._verdict(result)

    def _verdict(self, result: ChatResult) -> Verdict:
        __tracebackhide__ = True
        verdict = parse_verdict(result.text, self.model.name)
        ctx = context.current()
        if ctx is not None:
            shown = {**verdict.to_dict(), "reason": transcript.cut(verdict.reason)}
            ctx.judged(self.model.name, {**shown, "judge": self.model.name})
        return verdict


def parse_verdict(text: str, judge: str) -> Verdict:
    """The verdict in a judge's reply: a JSON object with a boolean ``pass`` and a string
    ``reason`` (an optional ``score`` from 0 to 1), alone or in a fenced block; anything
    else fails the test, quoting the reply's start."""
    __tracebackhide__ = True
    found = _object_in(text)
    problem = None
    if found is None:
        problem = "is not a JSON object"
    elif not isinstance(found.get("pass"), bool):
        problem = 'has no "pass": true or false'
    elif not isinstance(found.get("reason"), str):
        problem = 'has no "reason" text'
    if problem is not None or found is None:
        quoted = text[:QUOTED] + ("..." if len(text) > QUOTED else "")
        pytest.fail(
            f'judge {judge}: its reply {problem} (expected {{"pass": true or false, "reason": '
            f'"..."}}): {quoted!r}',
            pytrace=False,
        )
    return Verdict(found["pass"], found["reason"], _score(found.get("score")), judge, raw=text)


def _score(value: object) -> float | None:
    """A verdict's score: a number from 0 to 1, or none."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and 0 <= value <= 1 else None


def _object_in(text: str) -> Mapping[str, Any] | None:
    """The JSON object a reply holds: all of it, or from its first ``{`` to its last ``}``
    (a fenced block, a sentence around it)."""
    for candidate in (text.strip(), text[text.find("{") : text.rfind("}") + 1]):
        try:
            found = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(found, dict):
            return found
    return None


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, ChatResult):
        return value.text
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)
