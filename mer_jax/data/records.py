"""The record type every corpus reader returns, and how readers report bad input.

A reader turns a corpus on disk into a list of `Utterance`s plus a `ReadReport`. Bad input is never
dropped silently: each problem is recorded with the file (and line) it came from; with
``on_error="raise"`` the reader raises one `CorpusError` listing every problem it found, with
``on_error="skip"`` it leaves the affected utterances out and counts them in the report.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Literal

from mer_jax.errors import CorpusError

OnError = Literal["raise", "skip"]


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One labelled utterance: the unit that features, splits and models work on."""

    utterance_id: str
    corpus: str
    label: str  # the corpus' own label code (e.g. IEMOCAP 'exc'); label sets map it to a class
    transcript: str
    audio_path: str | None
    speaker: str
    session: str  # the group that speaker-independent protocols hold out (session, actor, ...)
    dialogue_id: str | None = None
    turn_index: int | None = None  # position within the dialogue, in time order
    start: float | None = None  # seconds within the dialogue recording
    end: float | None = None
    vad: tuple[float, float, float] | None = None  # valence, activation, dominance
    scripted: bool | None = None
    partition: str | None = None  # the corpus' official train / dev / test part, where it has one (MELD)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One piece of bad input: where it is and what is wrong with it."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@dataclasses.dataclass
class ReadReport:
    """What a reader kept, excluded (by label) and skipped (bad input)."""

    corpus: str
    kept: int = 0
    label_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    excluded_labels: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    ignored: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped: list[Problem] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.corpus}: {self.kept} utterances kept"]
        lines.append("  labels: " + _counts(self.label_counts))
        if self.excluded_labels:
            lines.append("  excluded by label: " + _counts(self.excluded_labels))
        for what, n in sorted(self.ignored.items()):
            lines.append(f"  ignored ({what}): {n}")
        lines.append(f"  skipped (bad input): {len(self.skipped)}")
        lines.extend(f"    {p}" for p in self.skipped)
        return "\n".join(lines)


def _counts(counter: collections.Counter) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


class ProblemLog:
    """Collects problems while a reader walks a corpus, then raises or skips as asked."""

    def __init__(self, on_error: OnError):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.problems: list[Problem] = []

    def add(self, path, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(str(path), line, message))

    def finish(self, report: ReadReport) -> None:
        """Raise every collected problem at once, or record them as skipped."""
        if self.problems and self.on_error == "raise":
            raise CorpusError(self.problems)
        report.skipped.extend(self.problems)
