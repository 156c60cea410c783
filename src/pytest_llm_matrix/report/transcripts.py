"""The transcripts a report keeps, within its budget (``--llm-transcript-budget``).

Each test's transcript (see :mod:`pytest_llm_matrix.calls.transcript`) goes into its entry
of the JSON report while the budget lasts. Past it, a failing test's takes the place of
passed tests' (failures are what is read), when that makes room; any other is left out and
counted. Sizes are the characters of the texts, with an allowance for the fields around
them, so the budget's cost does not grow with anything but the transcripts kept.
"""

from __future__ import annotations

from typing import Any

#: What an exchange's fields, and a message's, take besides their texts.
EXCHANGE_FIELDS = 300
MESSAGE_FIELDS = 30
VERDICT_FIELDS = 60


def size_of(exchanges: list[dict[str, Any]], verdicts: list[dict[str, Any]]) -> int:
    """About the characters ``exchanges`` and ``verdicts`` take in a report."""
    size = 0
    for entry in exchanges:
        texts = entry.get("input") or ()
        size += EXCHANGE_FIELDS + len(str(entry.get("answer", "")))
        size += sum(
            len(str(m.get("text", ""))) + MESSAGE_FIELDS for m in texts if isinstance(m, dict)
        )
    return size + sum(len(str(v.get("reason", ""))) + VERDICT_FIELDS for v in verdicts)


class Transcripts:
    """What the report keeps of the tests' transcripts, and what it left out."""

    def __init__(self, budget: int, junit: bool) -> None:
        self.budget = budget  # characters
        self.junit = junit  # --llm-junit-transcripts with --junitxml: kept per item too
        self.size = 0  # characters kept
        self.kept: dict[str, int] = {}  # by test: what its transcript takes
        #: passed tests whose transcripts are kept (their entries, by node id, in the order
        #: they came), and what those take
        self.evictable: dict[str, dict[str, Any]] = {}
        self.evictable_size = 0
        self.dropped: set[str] = set()  # tests whose transcripts were left out
        self.for_junit: dict[str, list[dict[str, Any]]] = {}  # by item, until its teardown

    def add(
        self, test: dict[str, Any], taken: dict[str, Any], run: dict[str, Any] | None, item: str
    ) -> None:
        """A report's transcript (``taken``) into its test's entry ``test``."""
        exchanges = [e for e in taken.get("exchanges") or () if isinstance(e, dict)]
        verdicts = [v for v in taken.get("verdicts") or () if isinstance(v, dict)]
        more = taken.get("more")
        key = test["nodeid"]
        size = size_of(exchanges, verdicts)
        failing = test["outcome"] in ("failed", "error")
        if failing and size <= self.budget - (self.size - self.evictable_size):
            while self.size + size > self.budget and self.evictable:
                self._evict(*self.evictable.popitem())
        if exchanges and self.size + size > self.budget:
            self.dropped.add(key)
            test["transcript_more"] = test.get("transcript_more", 0) + len(exchanges)
            exchanges = []
        elif exchanges:
            self.size += size
            self.kept[key] = self.kept.get(key, 0) + size
            if key in self.evictable:
                self.evictable_size += size
            elif not failing:
                self.evictable[key] = test
                self.evictable_size += self.kept[key]
        if run is not None:
            for entry in [*exchanges, *verdicts]:
                entry["run"] = run["index"]
        if exchanges:
            test.setdefault("transcript", []).extend(exchanges)
        if isinstance(more, int) and more > 0:
            test["transcript_more"] = test.get("transcript_more", 0) + more
        if verdicts:
            test.setdefault("verdicts", []).extend(verdicts)
        if self.junit and exchanges:
            self.for_junit.setdefault(item, []).extend(exchanges)

    def _evict(self, key: str, test: dict[str, Any]) -> None:
        """Leave out a passed test's transcript, for a failing test's."""
        self.evictable_size -= self.kept.get(key, 0)
        if test["outcome"] in ("failed", "error"):  # it failed since (a teardown error)
            return
        self.size -= self.kept.pop(key, 0)
        left_out = test.pop("transcript", [])
        test["transcript_more"] = test.get("transcript_more", 0) + len(left_out)
        self.dropped.add(key)
