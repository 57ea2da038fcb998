"""Shared plumbing for the corpus readers: list audio files, decode file names, collect utterances.

Every reader (EmoDB, MELD, RAVDESS, CREMA-D, manifests) builds its result through a `Collector`, so
they all check audio, apply a label set, refuse duplicate ids and count labels and speakers the same
way, and report bad input the same way (`ProblemLog`: raise one error listing every problem, or skip
and count).
"""

from __future__ import annotations

import collections
import dataclasses
import re
from pathlib import Path

from mer_jax.data.audio import SAMPLE_RATE, audio_problem
from mer_jax.data.labels import LabelSet, get_label_set
from mer_jax.data.records import OnError, ProblemLog, ReadReport, Utterance

UNKNOWN_SEX = "unknown"
_MAX_LISTED_SPEAKERS = 30  # summaries list per-speaker counts up to this many speakers


@dataclasses.dataclass
class CorpusReport(ReadReport):
    """A `ReadReport` that also counts kept utterances per speaker and knows each speaker's sex."""

    speaker_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    speaker_sex: dict[str, str] = dataclasses.field(default_factory=dict)  # 'f', 'm' or 'unknown'
    session_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    notes: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    release_counts: str = ""  # what the whole real release gives, so a user sees at once that their copy is whole

    def summary(self) -> str:
        """`ReadReport.summary` with speaker counts, sexes, sessions (where they are not the speakers),
        the real release's counts and notes after the label counts."""
        lines = super().summary().split("\n")
        if len(self.speaker_counts) <= _MAX_LISTED_SPEAKERS:
            listed = ", ".join(f"{s} {n}" for s, n in sorted(self.speaker_counts.items()))
        else:
            top = self.speaker_counts.most_common(_MAX_LISTED_SPEAKERS // 3)
            listed = "most utterances: " + ", ".join(f"{s} {n}" for s, n in top) + ", ..."
        extra = [f"  speakers: {len(self.speaker_counts)} ({listed or 'none'})"]
        if any(sex != UNKNOWN_SEX for sex in self.speaker_sex.values()):
            sexes = collections.Counter(self.speaker_sex.values())
            extra.append("  speaker sex: " + ", ".join(f"{k} {v}" for k, v in sorted(sexes.items())))
        if set(self.session_counts) != set(self.speaker_counts):
            extra.append("  per session: " + ", ".join(f"{s} {n}" for s, n in sorted(self.session_counts.items())))
        if self.release_counts:
            extra.append(f"  (the full real release gives {self.release_counts})")
        extra.extend(f"  note: {what}: {n}" for what, n in sorted(self.notes.items()))
        return "\n".join(lines[:2] + extra + lines[2:])


def resolve_label_set(label_set: str | LabelSet | None) -> LabelSet | None:
    """A label set given by name or object; None keeps every label code."""
    return get_label_set(label_set) if isinstance(label_set, str) else label_set


class Collector:
    """Gathers one corpus' utterances and its report while a reader walks the files.

    `add` keeps an utterance unless the label set excludes its label (counted in
    ``report.excluded_labels``), its audio is missing or unreadable, or its id was already taken
    (both are problems naming the file and line). `finish` raises or skips as `on_error` asks.
    """

    def __init__(self, corpus: str, *, label_set: str | LabelSet | None, on_error: OnError,
                 sample_rate: int | None = None):
        self.report = CorpusReport(corpus)
        self.sample_rate = sample_rate  # the release's own rate, where it has one: other files are problems
        self.audio_formats: collections.Counter = collections.Counter()  # (rate, channels) of every readable file listed
        self.label_set = resolve_label_set(label_set)
        self.log = ProblemLog(on_error)
        self.utterances: list[Utterance] = []
        self.speaker_sex: dict[str, str] = {}
        self._ids: dict[str, str] = {}

    def problem(self, path, message: str, line: int | None = None) -> None:
        self.log.add(path, message, line)

    def ignore(self, what: str) -> None:
        """Count a file the reader deliberately does not read (e.g. macOS '._' files)."""
        self.report.ignored[what] += 1

    def excludes(self, label: str) -> bool:
        """Whether the label set leaves `label` out; each exclusion is counted in the report."""
        if self.label_set is not None and self.label_set.index(label) is None:
            self.report.excluded_labels[label] += 1
            return True
        return False

    def add(self, utt: Utterance, *, source=None, line: int | None = None, seconds: float | None = None) -> None:
        """Keep `utt`, exclude it by label, or record why it cannot be used.

        `source`/`line` name where the utterance was listed (a CSV row); without them the audio
        file itself is the source. `seconds`: how long the labels say the audio lasts, where they do.
        """
        where = f" (listed at {source}:{line})" if source is not None else ""
        if self.excludes(utt.label):
            return
        if utt.audio_path is not None:
            message = _audio_message(utt.audio_path, sample_rate=self.sample_rate, seconds=seconds,
                                     formats=self.audio_formats)
            if message is not None:
                self.problem(utt.audio_path, message + where)
                return
        if utt.utterance_id in self._ids:
            self.problem(
                source if source is not None else utt.audio_path,
                f"duplicate utterance id {utt.utterance_id!r} (first from {self._ids[utt.utterance_id]})",
                line,
            )
            return
        self._ids[utt.utterance_id] = f"{source}:{line}" if source is not None else str(utt.audio_path)
        self.utterances.append(utt)

    def finish(self) -> tuple[list[Utterance], CorpusReport]:
        """Count what was kept, then raise every problem at once or record them as skipped."""
        report = self.report
        report.kept = len(self.utterances)
        report.label_counts.update(u.label for u in self.utterances)
        report.speaker_counts.update(u.speaker for u in self.utterances)
        report.session_counts.update(u.session for u in self.utterances)
        for (rate, channels), n in self.audio_formats.items():  # what decoding will change, said, not done silently
            if rate != SAMPLE_RATE:
                report.notes[f"audio files resampled from {rate} Hz to {SAMPLE_RATE} Hz"] += n
            if channels > 1:
                report.notes[f"audio files mixed from {channels} channels to mono"] += n
        report.speaker_sex = {
            s: self.speaker_sex.get(s, UNKNOWN_SEX) for s in sorted(report.speaker_counts)
        }
        self.log.finish(report)
        return self.utterances, report


def _audio_message(path, **expected) -> str | None:
    """`audio_problem`, saying plainly when the file is a Git LFS pointer rather than audio."""
    message = audio_problem(path, **expected)
    if message is not None and _is_lfs_pointer(path):
        message += "; it is a Git LFS pointer, not audio: fetch the real files with `git lfs pull`"
    return message


def _is_lfs_pointer(path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(40).startswith(b"version https://git-lfs")
    except OSError:
        return False


def list_wavs(folder: Path, collector: Collector) -> list[Path]:
    """The ``.wav`` files in `folder` (any case), sorted.

    Everything else is counted in the report as ignored, never dropped silently: macOS '._'
    metadata files, hidden and system files, files of other types, and sub-folders.
    """
    kept = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("._"):
            collector.ignore("macOS '._' metadata files")
        elif path.name.startswith(".") or path.name.lower() in ("thumbs.db", "desktop.ini"):
            collector.ignore("hidden or system files")
        elif path.is_dir():
            collector.ignore(f"folders inside {folder.name}/")
        elif path.suffix.lower() != ".wav":
            collector.ignore("files not ending in .wav")
        else:
            kept.append(path)
    return kept


def decode_name(path: Path, pattern: re.Pattern, expected: str, collector: Collector, **codes):
    """Decode a file name's stem with `pattern` and check each named group against its code table.

    `codes` maps a group name to the collection of codes it may hold (e.g. a dict from code to
    meaning). Returns the groups' codes, or None after recording a problem naming the file: a
    malformed name (saying what was `expected`) or an unknown code.
    """
    match = pattern.fullmatch(path.stem)
    if match is None:
        collector.problem(path, f"malformed file name; expected {expected}")
        return None
    fields = match.groupdict()
    for group, known in codes.items():
        if fields[group] not in known:
            collector.problem(
                path,
                f"unknown {group} code {fields[group]!r} in file name (known: {', '.join(sorted(known))})",
            )
            return None
    return fields


def find_audio_folder(root, name: str) -> Path:
    """``root/<name>`` if it is a folder, else `root` itself if it holds ``.wav`` files.

    Lets a user point a reader at either the corpus root of the official download or straight at
    its audio folder. Raises FileNotFoundError naming what was looked for.
    """
    root = Path(root)
    if (root / name).is_dir():
        return root / name
    if root.is_dir() and any(p.suffix.lower() == ".wav" for p in root.iterdir()):
        return root
    raise FileNotFoundError(f"no audio folder found: looked for {root / name}/ and .wav files in {root}/")
