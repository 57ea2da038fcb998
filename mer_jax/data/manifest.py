"""Reader for a generic manifest, so any corpus can be used without writing code.

A manifest is a CSV (``.csv``), tab-separated (``.tsv``) or JSON-lines (``.jsonl``) file, UTF-8,
one utterance per row (object), with these columns (keys):

=============  ========  ===================================================================
column         needed    meaning
=============  ========  ===================================================================
audio          yes [1]   audio file, relative to the manifest's folder (or absolute)
transcript     yes [2]   what is said
label          yes       the label code; a label set maps codes to classes
speaker        yes       speaker id
session        no        the group speaker-independent protocols hold out (default: speaker)
dialogue_id    no        conversation the utterance belongs to
turn           no        0-based position within the dialogue (needs dialogue_id)
utterance_id   no        unique id (default: the audio path without extension, else the line)
start, end     no        seconds within the dialogue recording
=============  ========  ===================================================================

[1] not needed with ``require_audio=False`` (text-only corpora): the column may be absent and
cells empty. [2] with ``require_transcript=False`` (audio-only corpora) likewise.

Other columns are allowed and ignored. In a CSV/TSV a missing required column is an error at once
(no row could be read), and so is a file that is not UTF-8 (naming its first undecodable line); in
JSON lines a missing key is a problem of that line. A bad row (empty required cell, missing or
unreadable audio, a non-numeric turn, a duplicate id, a dialogue's turn an earlier row already took) is
a problem naming the manifest and line, skipped and counted with ``on_error="skip"``. Without a label
set every label code is kept; with one, codes it does not map are excluded and counted
(``report.excluded_labels``), so a typo in a label shows up there.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from mer_jax.data.corpus import Collector
from mer_jax.data.labels import LabelSet
from mer_jax.data.records import OnError, Problem, ReadReport, Utterance
from mer_jax.errors import ConfigError, CorpusError

_FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None}


def read_manifest(
    path,
    *,
    corpus: str | None = None,
    require_audio: bool = True,
    require_transcript: bool = True,
    label_set: str | LabelSet | None = None,
    on_error: OnError = "raise",
) -> tuple[list[Utterance], ReadReport]:
    """Read the manifest at `path`; `corpus` names the corpus (default: the file's stem)."""
    path = Path(path)
    if path.suffix.lower() not in _FORMATS:
        raise ConfigError(f"{path}: manifest must end in {', '.join(_FORMATS)}")
    required = ["label", "speaker"]
    required += ["audio"] * require_audio + ["transcript"] * require_transcript
    collector = Collector(corpus or path.stem, label_set=label_set, on_error=on_error)
    turns: dict[tuple[str, int], int] = {}  # (dialogue_id, turn) -> the line that took it
    for line, row in _records(path, required, collector):
        utt, problem = _utterance(row, path, line, collector.report.corpus, required)
        if problem is None and utt.turn_index is not None:
            first = turns.setdefault((utt.dialogue_id, utt.turn_index), line)
            if first != line:
                problem = f"dialogue {utt.dialogue_id!r} turn {utt.turn_index} is already taken by line {first}"
        if problem is not None:
            collector.problem(path, problem, line)
        else:
            collector.add(utt, source=path, line=line)
    return collector.finish()


def _records(path: Path, required: list[str], collector: Collector):
    """Yield (line, {column: str}) for each record; empty or null cells become ''."""
    with io.StringIO(_text(path), newline="") as f:
        delimiter = _FORMATS[path.suffix.lower()]
        if delimiter is None:
            yield from _json_lines(f, path, collector)
            return
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = [c for c in required if c not in (reader.fieldnames or ())]
        if missing:
            raise CorpusError([Problem(str(path), 1, f"missing column(s) {', '.join(missing)}")])
        line = reader.line_num + 1
        for raw in reader:
            if None in raw:
                collector.problem(path, f"{len(raw[None])} more field(s) than the header has", line)
            else:
                yield line, {k: (v or "").strip() for k, v in raw.items()}
            line = reader.line_num + 1


def _text(path: Path) -> str:
    """The manifest's text, without a byte order mark. A file in another encoding (e.g. latin-1 from a
    spreadsheet) is refused at once, naming its first undecodable line: its other rows are likely wrong too."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CorpusError([Problem(str(path), line, f"not UTF-8 (byte 0x{data[e.start]:02x} cannot be decoded): "
                                   "save the manifest as UTF-8")]) from None


def _json_lines(f, path: Path, collector: Collector):
    for line, text in enumerate(f, start=1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            collector.problem(path, f"not valid JSON ({e.msg})", line)
            continue
        if not isinstance(obj, dict):
            collector.problem(path, f"expected a JSON object, got {type(obj).__name__}", line)
            continue
        yield line, {k: "" if v is None else str(v).strip() for k, v in obj.items()}


def _utterance(row: dict, path: Path, line: int, corpus: str, required: list[str]):
    """Build one Utterance from a record; returns (utterance, None) or (None, what is wrong)."""
    absent = [c for c in required if not row.get(c)]
    if absent:
        return None, f"empty or missing {', '.join(absent)}"
    audio = row.get("audio") or None
    if audio is not None:
        audio = Path(audio) if Path(audio).is_absolute() else path.parent / audio
    try:
        turn = int(row["turn"]) if row.get("turn") else None
        start = float(row["start"]) if row.get("start") else None
        end = float(row["end"]) if row.get("end") else None
    except ValueError as e:
        return None, f"turn must be a whole number and start/end numbers ({e})"
    if turn is not None and (turn < 0 or not row.get("dialogue_id")):
        return None, "turn must be >= 0 and needs a dialogue_id"
    if row.get("utterance_id"):
        utterance_id = row["utterance_id"]
    elif row.get("audio"):
        utterance_id = str(Path(row["audio"]).with_suffix(""))
    else:
        utterance_id = f"{path.stem}:{line}"
    return (
        Utterance(
            utterance_id=utterance_id,
            corpus=corpus,
            label=row["label"],
            transcript=row.get("transcript", ""),
            audio_path=None if audio is None else str(audio),
            speaker=row["speaker"],
            session=row.get("session") or row["speaker"],
            dialogue_id=row.get("dialogue_id") or None,
            turn_index=turn,
            start=start,
            end=end,
        ),
        None,
    )
