"""The accepted range of every number a user gives the plugin, and the rules for names.

In one place so that a value is checked the same way wherever it comes from (the TOML
config, a hook, the command line, an ini file, a marker) and every refusal states what is
valid. Non-finite and absurd values are refused up front: left alone they fail much later
and far away (an OverflowError in a timer, NaN in the JSON report, a budget never reached).
"""

from __future__ import annotations

import math
import reprlib
from typing import Final

#: The name that stands for every model in a selection.
ALL: Final = "all"


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``1 model``, ``2 models``, ``0 models``."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def shown(value: object) -> str:
    """``repr(value)`` cut to a readable length, for error messages about any input."""
    if isinstance(value, int) and value.bit_length() > 128:  # also past int->str limits
        return f"an integer of about {value.bit_length() * math.log10(2):.0f} digits"
    cut = reprlib.Repr()
    cut.maxstring = cut.maxother = 60
    try:
        return cut.repr(value)
    except Exception:  # a hostile __repr__, a huge int deep inside a list
        return f"a {type(value).__name__}"


def dollars(value: float) -> str:
    """An amount as a person writes it, never in exponent form: ``$5``, ``$0.5``,
    ``$0.000001``, ``$1,000,000`` (a budget of ``1e-06`` is not ``$1e-06``)."""
    # lazy: decimal costs milliseconds to import, and only a budget is shown this way
    from decimal import Decimal

    return f"${Decimal(repr(float(value))).normalize():,f}"


def _figure(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


class Range:
    """A finite number from ``low`` to ``high`` (``low`` itself excluded when ``above_low``);
    ``what`` names it for messages, ``note`` explains the upper bound.

    A plain class, not a dataclass: this module loads in every pytest run, and making a
    dataclass costs a few tenths of a millisecond each."""

    __slots__ = ("above_low", "high", "low", "note", "what")

    def __init__(
        self, what: str, low: float, high: float, above_low: bool = False, note: str = ""
    ) -> None:
        self.what = what
        self.low = low
        self.high = high
        self.above_low = above_low
        self.note = note

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.what!r}, {self.low!r}, {self.high!r})"

    def __str__(self) -> str:
        high = _figure(self.high) + (f" ({self.note})" if self.note else "")
        if self.above_low:
            return f"{self.what} greater than {_figure(self.low)}, at most {high}"
        return f"{self.what} from {_figure(self.low)} to {high}"

    def _kind_ok(self, value: float) -> bool:
        return not isinstance(value, bool)

    def _in_range(self, value: float) -> bool:
        # ints are compared as ints: float(10**400) would overflow
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return (value > self.low if self.above_low else value >= self.low) and value <= self.high

    def check(self, value: object) -> float:
        """``value`` (from TOML, a hook or a marker) if it is in range; else ValueError."""
        if isinstance(value, int | float) and self._kind_ok(value) and self._in_range(value):
            return float(value) + 0.0  # +0.0: -0.0 becomes 0.0
        raise ValueError(f"expected {self}, got {shown(value)}")

    def parse(self, text: str) -> float:
        """The number written in ``text`` (command line, ini) if it is in range."""
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not self._in_range(value):
            raise ValueError(f"expected {self}, got {shown(text)}")
        return value + 0.0


class WholeRange(Range):
    """A :class:`Range` of integers: a float, even 2.0, is a mistake (a typo for 2.5?)."""

    __slots__ = ()

    def _kind_ok(self, value: float) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def check(self, value: object) -> int:
        if isinstance(value, int) and self._kind_ok(value) and self._in_range(value):
            return value
        raise ValueError(f"expected {self}, got {shown(value)}")

    def parse(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not a whole number, or too many digits to read
            raise ValueError(f"expected {self}, got {shown(text)}") from None
        if not self._in_range(value):
            raise ValueError(f"expected {self}, got {shown(text)}")
        return value


#: A test's timeout: a fraction of a second cannot fit a request; a week is no timeout.
TIMEOUT: Final = Range("a number of seconds", 0.1, 7 * 24 * 3600, note="a week")
#: Requests in flight (a model's, all models'): no provider allows more.
CONCURRENCY: Final = WholeRange("a whole number", 1, 10_000)
#: Requests per minute to one model.
RPM: Final = WholeRange("a whole number", 1, 1_000_000)
#: USD per million tokens; the dearest models cost hundreds.
PRICE: Final = Range("a number of USD per million tokens", 0, 10_000)
#: Attempts per request, the first included.
ATTEMPTS: Final = WholeRange("a whole number", 1, 100)
#: The longest single wait before a retry.
MAX_WAIT: Final = Range("a number of seconds", 0, 24 * 3600, above_low=True, note="a day")
#: The session's cost budget.
MAX_COST: Final = Range("a number of USD", 0, 1_000_000, above_low=True)
#: Runs per test and model (each run is a collected item).
REPEAT: Final = WholeRange("a whole number", 1, 1000)
#: Characters kept of each text of a transcript (0: no transcripts).
TRANSCRIPT_CHARS: Final = WholeRange("a whole number of characters", 0, 1_000_000)
#: Megabytes of transcripts a report keeps in all (a merge or a baseline reads a report of
#: up to 256 MiB).
TRANSCRIPT_BUDGET: Final = WholeRange("a whole number of megabytes", 1, 200)
#: The built-in simulator's seed (its config's ``seed`` takes the same).
SIM_SEED: Final = WholeRange("a whole number", -1_000_000_000, 1_000_000_000)


def rate(value: float, written: str, percent: bool = False) -> float:
    """A share of passing tests: 0 to 1, or 0% to 100% when ``percent``; else ValueError.

    A bare number above 1 is refused rather than read as a percentage: ``2`` may mean 2%
    or a typo for 0.2, and reading it either way silently is worse than asking.
    """
    high = 100.0 if percent else 1.0
    # no math.isfinite on ints: it overflows for 10**400 (NaN fails every comparison)
    if 0 <= value <= high:
        return value / high + 0.0
    hint = ""
    if not percent and 1 < value <= 100:
        hint = f" (did you mean {value / 100:g} or '{_figure(value)}%'?)"
    raise ValueError(
        f"expected a share from 0 to 1 (0.8) or a percentage from 0% to 100% ('80%'), "
        f"got {written}{hint}"
    )


def rate_of(value: object) -> float:
    """A share given in code (a marker): a number from 0 to 1, or text like ``"80%"``."""
    if isinstance(value, str):
        return parse_rate(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return rate(value, shown(value))
    return rate(math.nan, shown(value))


def parse_rate(text: str) -> float:
    """``"0.8"`` or ``"80%"`` -> 0.8; anything else is a ValueError saying what is valid."""
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw[:-1] if percent else raw)
    except ValueError:
        value = math.nan
    return rate(value, shown(text), percent)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an alias, group or tag (all are names in the selection
    syntax and aliases end up in test ids), or None when it can."""
    if not name:
        return "is empty"
    if any(char.isspace() for char in name):
        return "contains whitespace"
    if not name.isprintable():
        return "contains a control or unprintable character"
    if "," in name:
        return "contains ',', which separates names in a selection"
    if "[" in name or "]" in name:
        return "contains '[' or ']', which would break test ids like test_x[alias]"
    if name.startswith("-"):
        return "starts with '-', which excludes in a selection (--models=all,-name)"
    if name == ALL:
        return f"'{ALL}' is reserved: it selects every model"
    return None
