"""Corpus readers on the real public corpora in ../shared/data (EmoDB, MELD).

The oracles are independent of the readers: EmoDB's labels.csv (written from the file names by the
data's curator, not by this code), the counts documented in each corpus' SOURCE.txt, and MELD's
CSVs parsed here with the csv module.
"""

from __future__ import annotations

import collections
import csv
from pathlib import Path

import pytest
import soundfile as sf

from mer_jax.data.emodb import read_emodb
from mer_jax.data.meld import SPLITS, read_meld

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EMODB = DATA / "emodb"
MELD = DATA / "meld"

needs_emodb = pytest.mark.skipif(
    not (EMODB / "wav").is_dir(), reason=f"EmoDB not found at {EMODB} (see ../shared/data/README.md)"
)
needs_meld = pytest.mark.skipif(
    not (MELD / "data" / "MELD").is_dir(), reason=f"MELD not found at {MELD} (see ../shared/data/README.md)"
)

# Documented in emodb/SOURCE.txt.
EMODB_PER_CLASS = {
    "anger": 127, "boredom": 81, "disgust": 46, "fear": 69,
    "happiness": 71, "neutral": 79, "sadness": 62,
}  # fmt: skip
EMODB_PER_SPEAKER = {
    "03": 49, "08": 58, "09": 43, "10": 38, "11": 55,
    "12": 35, "13": 61, "14": 69, "15": 56, "16": 71,
}  # fmt: skip
# Documented in meld/SOURCE.txt (train, dev, test).
MELD_ROWS = {"train": 9989, "dev": 1109, "test": 2610}
MELD_DIALOGUES = {"train": 1038, "dev": 114, "test": 280}
MELD_EMOTIONS = {
    "neutral": (4710, 470, 1256), "joy": (1743, 163, 402), "surprise": (1205, 150, 281),
    "anger": (1109, 153, 345), "sadness": (683, 111, 208), "disgust": (271, 22, 68),
    "fear": (268, 40, 50),
}  # fmt: skip
MELD_SENTIMENTS = {"neutral": (4710, 470, 1256), "negative": (2945, 406, 833), "positive": (2334, 233, 521)}


@pytest.fixture(scope="module")
def emodb():
    return read_emodb(EMODB)


def _emodb_labels_csv() -> dict[str, dict]:
    with open(EMODB / "labels.csv", encoding="utf-8", newline="") as f:
        return {Path(row["file"]).stem: row for row in csv.DictReader(f)}


@needs_emodb
def test_emodb_counts_match_labels_csv_and_documentation(emodb):
    utterances, report = emodb
    oracle = _emodb_labels_csv()
    assert len(utterances) == report.kept == len(oracle) == 535
    assert report.skipped == [] and not report.ignored

    per_class = collections.Counter(row["emotion"] for row in oracle.values())
    per_speaker = collections.Counter(row["speaker"] for row in oracle.values())
    assert per_class == EMODB_PER_CLASS and per_speaker == EMODB_PER_SPEAKER  # the oracle agrees
    assert collections.Counter(u.label for u in utterances) == per_class
    assert collections.Counter(u.speaker for u in utterances) == per_speaker
    assert report.label_counts == per_class and report.speaker_counts == per_speaker
    assert len({u.session for u in utterances}) == 10


@needs_emodb
def test_emodb_each_utterance_matches_labels_csv(emodb):
    utterances, report = emodb
    oracle = _emodb_labels_csv()
    assert {u.utterance_id for u in utterances} == set(oracle)
    for u in utterances:
        row = oracle[u.utterance_id]
        assert (u.label, u.speaker, u.session) == (row["emotion"], row["speaker"], row["speaker"])
        assert u.transcript == row["transcript_de"]
        assert Path(u.audio_path) == EMODB / row["file"]
        assert report.speaker_sex[u.speaker] == row["sex"]
    assert collections.Counter(report.speaker_sex.values()) == {"f": 5, "m": 5}


@needs_emodb
def test_emodb_every_file_decodes(emodb):
    utterances, _ = emodb
    for u in utterances:
        wave, rate = sf.read(u.audio_path, dtype="float32")
        assert rate == 16000 and wave.ndim == 1 and len(wave) > 16000, u.audio_path
        assert abs(wave).max() > 0, u.audio_path


@needs_emodb
def test_emodb_label_set_keeps_all_seven():
    utterances, report = read_emodb(EMODB, label_set="emodb7")
    assert len(utterances) == 535 and not report.excluded_labels


def _meld_csv_rows(split: str) -> list[dict]:
    with open(MELD / "data" / "MELD" / f"{split}_sent_emo.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@needs_meld
@pytest.mark.parametrize("split", SPLITS)
def test_meld_split_counts(split):
    i = SPLITS.index(split)
    rows = _meld_csv_rows(split)
    utterances, report = read_meld(MELD, split)
    assert len(utterances) == report.kept == len(rows) == MELD_ROWS[split]
    assert report.skipped == []

    emotions = collections.Counter(r["Emotion"] for r in rows)
    assert emotions == {k: v[i] for k, v in MELD_EMOTIONS.items()}
    assert collections.Counter(u.label for u in utterances) == emotions == report.label_counts
    assert collections.Counter(u.speaker for u in utterances) == collections.Counter(
        r["Speaker"] for r in rows
    )
    dialogues = {r["Dialogue_ID"] for r in rows}
    assert len(dialogues) == MELD_DIALOGUES[split]
    assert {u.dialogue_id for u in utterances} == {f"{split}_dia{d}" for d in dialogues}
    assert all(u.audio_path is None and u.partition == split for u in utterances)

    sentiments, _ = read_meld(MELD, split, target="sentiment", label_set="meld_sentiment3")
    assert collections.Counter(u.label for u in sentiments) == {
        k: v[i] for k, v in MELD_SENTIMENTS.items()
    }


@needs_meld
def test_meld_rows_in_order_with_turns_and_text():
    rows = _meld_csv_rows("train")
    utterances, _ = read_meld(MELD, "train")
    # Each dialogue's turns count 0, 1, 2, ... in Utterance_ID order, whatever gaps the ids have.
    by_dialogue = collections.defaultdict(list)
    for row, u in zip(rows, utterances, strict=True):
        assert u.utterance_id == f"train_dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}"
        assert u.transcript == row["Utterance"].strip()
        assert u.session == f"S{int(row['Season']):02d}E{int(row['Episode']):02d}"
        by_dialogue[u.dialogue_id].append((int(row["Utterance_ID"]), u.turn_index))
    for pairs in by_dialogue.values():
        assert [t for _, t in sorted(pairs)] == list(range(len(pairs)))
    first = utterances[0]  # "00:16:16,059" -> "00:16:21,731"
    assert first.start == pytest.approx(16 * 60 + 16.059) and first.end == pytest.approx(16 * 60 + 21.731)
    assert "’" in first.transcript


@needs_meld
def test_meld_all_is_the_three_splits():
    utterances, report = read_meld(MELD, "all")
    assert collections.Counter(u.partition for u in utterances) == MELD_ROWS
    assert len({u.utterance_id for u in utterances}) == sum(MELD_ROWS.values())
    assert report.label_counts == {k: sum(v) for k, v in MELD_EMOTIONS.items()}
