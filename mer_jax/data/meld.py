"""Reader for MELD (Multimodal EmotionLines Dataset): utterances of dialogues from the TV series Friends.

Files: ``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv`` with columns ``Sr No.,
Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, StartTime,
EndTime``. They are found in `root` itself (the ``MELD.Raw`` download) or in ``root/data/MELD/``
(the GitHub repository). The official split is kept: read one split with ``split="train"`` etc., or
all three with ``split="all"``; each utterance's split is its ``partition``.

Choices (MELD leaves them open):
- Ids. Dialogue ids restart in every split, so they carry the split: utterance ``train_dia0_utt3``
  (the clip name ``dia0_utt3`` with its split), dialogue ``train_dia0``.
- Turn order. ``turn_index`` is the utterance's rank by ``Utterance_ID`` within its dialogue:
  the ids have gaps (utterances removed by the authors) and the timestamps are sometimes out of
  order, so the ids are the order of record.
- Session (the group a speaker-independent protocol holds out): the episode, ``S08E21``. Speakers
  recur across all of MELD, so no speaker-disjoint split exists; holding out whole episodes keeps
  dialogues and scenes together. MELD's own protocol is the official split.
- ``start``/``end``: seconds within the episode (the CSV's ``H:MM:SS,mmm``), not within a clip.
- Text encoding. The CSVs of the original release hold Windows-1252 punctuation decoded as
  Latin-1 (U+0092 for ’, U+0085 for …), which shows as 'Â’' when the bytes are read as cp1252, and
  no-break spaces; re-saved copies can hold the double-encoded form ('Â’' as text). `repair_text`
  turns both back into the intended characters (’ … “ ” – —) and the no-break space into a space,
  the same mapping the MELD repository later applied to its own CSVs (declare-lab/MELD#28). The
  number of repaired transcripts is in ``report.notes``. Files that are not UTF-8 at all are read
  as cp1252.
- Audio. MELD ships mp4 clips; a user who converts them to ``dia{D}_utt{U}.wav`` passes
  ``audio_dir`` holding one folder per split (``train/``, ``dev/``, ``test/``, since the names
  repeat across splits). A clip that is then missing or unreadable is a problem naming the wav and
  the CSV row. Without ``audio_dir``, ``audio_path`` is None (text-only models).
"""

from __future__ import annotations

import collections
import csv
import io
import re
from pathlib import Path

from mer_jax.data.corpus import Collector
from mer_jax.data.labels import LabelSet
from mer_jax.data.records import OnError, Problem, ReadReport, Utterance
from mer_jax.errors import CorpusError

CORPUS = "meld"
SPLITS = ("train", "dev", "test")
EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
SENTIMENTS = ("negative", "neutral", "positive")
COLUMNS = (
    "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
    "Season", "Episode", "StartTime", "EndTime",
)  # fmt: skip
_TARGETS = {"emotion": ("Emotion", EMOTIONS), "sentiment": ("Sentiment", SENTIMENTS)}
_TIME = re.compile(r"(\d+):(\d\d):(\d\d(?:[.,]\d+)?)")


def read_meld(
    root,
    split: str = "all",
    *,
    target: str = "emotion",
    audio_dir=None,
    label_set: str | LabelSet | None = None,
    on_error: OnError = "raise",
) -> tuple[list[Utterance], ReadReport]:
    """Read MELD's `split` ('train', 'dev', 'test' or 'all') from `root`.

    `target` picks the label: 'emotion' (7 classes, label set "meld7") or 'sentiment' (3 classes,
    "meld_sentiment3"). Both columns are checked on every row either way. Malformed rows, unknown
    labels, duplicate ids and (with `audio_dir`) missing or unreadable clips are problems naming the
    file and line. A missing CSV or column raises at once: nothing of that split could be read.
    """
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be one of {SPLITS + ('all',)}, got {split!r}")
    if target not in _TARGETS:
        raise ValueError(f"target must be one of {tuple(_TARGETS)}, got {target!r}")
    collector = Collector(CORPUS, label_set=label_set, on_error=on_error)
    for name in SPLITS if split == "all" else (split,):
        csv_path = find_csv(root, name)
        audio_folder = None if audio_dir is None else Path(audio_dir) / name
        rows = _parse_rows(csv_path, collector)
        turns = _turn_indices(rows)
        label_column = _TARGETS[target][0]
        for line, row in rows:
            dialogue, utt = row["Dialogue_ID"], row["Utterance_ID"]
            clip = f"dia{dialogue}_utt{utt}"
            collector.add(
                Utterance(
                    utterance_id=f"{name}_{clip}",
                    corpus=CORPUS,
                    label=row[label_column],
                    transcript=row["Utterance"],
                    audio_path=None if audio_folder is None else str(audio_folder / f"{clip}.wav"),
                    speaker=row["Speaker"],
                    session=f"S{row['Season']:02d}E{row['Episode']:02d}",
                    dialogue_id=f"{name}_dia{dialogue}",
                    turn_index=turns[dialogue, utt],
                    start=row["StartTime"],
                    end=row["EndTime"],
                    partition=name,
                ),
                source=csv_path,
                line=line,
            )
    return collector.finish()


def find_csv(root, split: str) -> Path:
    """``<split>_sent_emo.csv`` in `root` or ``root/data/MELD``; FileNotFoundError naming both."""
    root = Path(root)
    candidates = [root / f"{split}_sent_emo.csv", root / "data" / "MELD" / f"{split}_sent_emo.csv"]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"MELD {split} split not found: looked for {' and '.join(map(str, candidates))}")


def _parse_rows(path: Path, collector: Collector) -> list[tuple[int, dict]]:
    """The well-formed rows of one CSV as (line, fields with typed values); bad rows are problems."""
    text = _decode(path, collector)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise CorpusError([Problem(str(path), 1, f"missing column(s) {', '.join(missing)}")])
    rows, seen = [], {}
    line = reader.line_num + 1  # first line of the next record
    for raw in reader:
        row, problem = _parse_row(raw, collector)
        key = None if row is None else (row["Dialogue_ID"], row["Utterance_ID"])
        if key in seen:
            problem = f"duplicate Dialogue_ID {key[0]}, Utterance_ID {key[1]} (first at line {seen[key]})"
        if problem is not None:
            collector.problem(path, problem, line)
        else:
            seen[key] = line
            rows.append((line, row))
        line = reader.line_num + 1
    return rows


def _parse_row(raw: dict, collector: Collector) -> tuple[dict | None, str | None]:
    """Check and type one CSV record; returns (row, None) or (None, what is wrong)."""
    if None in raw:
        return None, f"{len(raw[None])} more field(s) than the header has"
    if any(raw[c] is None for c in COLUMNS):
        return None, "fewer fields than the header has"
    # Repair before stripping: str.strip() would remove U+0085, the damaged form of '…'.
    repaired = repair_text(raw["Utterance"])
    if repaired != raw["Utterance"]:
        collector.report.notes["transcripts with repaired cp1252 punctuation"] += 1
    row = {c: raw[c].strip() for c in COLUMNS} | {"Utterance": repaired.strip()}
    if not row["Utterance"]:
        return None, "empty Utterance"
    if not row["Speaker"]:
        return None, "empty Speaker"
    for column, known in (_TARGETS["emotion"], _TARGETS["sentiment"]):
        if row[column] not in known:
            return None, f"unknown {column} {row[column]!r} (known: {', '.join(known)})"
    for column in ("Dialogue_ID", "Utterance_ID", "Season", "Episode"):
        if not row[column].isdigit():
            return None, f"{column} must be a whole number, got {row[column]!r}"
        row[column] = int(row[column])
    for column in ("StartTime", "EndTime"):
        match = _TIME.fullmatch(row[column])
        if match is None:
            return None, f"{column} must look like 0:16:16,059, got {row[column]!r}"
        hours, minutes, seconds = match.groups()
        row[column] = int(hours) * 3600 + int(minutes) * 60 + float(seconds.replace(",", "."))
    return row, None


def _turn_indices(rows: list[tuple[int, dict]]) -> dict[tuple[int, int], int]:
    """(Dialogue_ID, Utterance_ID) -> rank of the utterance id within its dialogue."""
    by_dialogue = collections.defaultdict(list)
    for _, row in rows:
        by_dialogue[row["Dialogue_ID"]].append(row["Utterance_ID"])
    return {
        (dialogue, utt): rank
        for dialogue, utts in by_dialogue.items()
        for rank, utt in enumerate(sorted(utts))
    }


def _decode(path: Path, collector: Collector) -> str:
    """The file's text: UTF-8 (with or without a byte-order mark), else cp1252 (noted)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        collector.report.notes[f"{path.name} read as cp1252 (not UTF-8)"] += 1
        return data.decode("cp1252", errors="replace")


# cp1252 bytes 0x80-0x9F that have characters: decoded as Latin-1 they become C1 controls.
_C1_TO_CP1252 = {
    chr(b): bytes([b]).decode("cp1252") for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}
_C1 = re.compile("[" + "".join(_C1_TO_CP1252) + "]")
# UTF-8 lead byte then continuation byte, as they read when the bytes are decoded as cp1252: 'Â’'.
_DOUBLE_ENCODED = re.compile(
    "[" + bytes(range(0xC2, 0xF5)).decode("cp1252") + "]"
    "[" + bytes(range(0x80, 0xC0)).decode("cp1252", errors="ignore") + "]"
)


def repair_text(text: str) -> str:
    """Undo the MELD CSVs' encoding damage: C1 controls and double-encoded cp1252, no-break spaces.

    ``'you\\x92re'`` and ``'youÂ’re'`` both become ``'you’re'``. Text without such damage is
    returned unchanged (a double-encoding repair is only kept if it decodes cleanly).
    """
    text = _C1.sub(lambda m: _C1_TO_CP1252[m.group()], text)
    if _DOUBLE_ENCODED.search(text):
        try:
            text = text.encode("cp1252").decode("utf-8")
        except UnicodeError:
            pass
        else:
            text = _C1.sub(lambda m: _C1_TO_CP1252[m.group()], text)
    return text.replace("\xa0", " ")
