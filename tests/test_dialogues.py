"""Dialogue-level examples: grouping by dialogue, turn order, one padded size, and clear refusals."""

import csv

import numpy as np
import pytest

from mer_jax.data.dialogues import dialogue_examples, dialogues_of, longest_dialogue
from mer_jax.data.iemocap import read_iemocap
from mer_jax.data.labels import get_label_set
from mer_jax.data.manifest import read_manifest
from mer_jax.data.records import Utterance
from mer_jax.data.splits import make_splits

LABELS = get_label_set("iemocap4")


def _utt(uid, dialogue, turn, label="neu", corpus="iemocap"):
    return Utterance(uid, corpus, label, f"text of {uid}", None, "Ses01F", "Ses01", dialogue_id=dialogue,
                     turn_index=turn)


def _corpus():
    # Stored out of turn order and interleaved; turn indices with gaps (excluded labels), as the IEMOCAP reader gives.
    return [_utt("b2", "B", 4, "sad"), _utt("a1", "A", 1, "ang"), _utt("b0", "B", 0, "hap"),
            _utt("a0", "A", 0, "neu"), _utt("b1", "B", 2, "exc"), _utt("c0", "C", 7, "neu")]


def test_groups_by_dialogue_in_turn_order_with_one_padded_size():
    utts = _corpus()
    vectors = {"text": np.arange(12, dtype=np.float64).reshape(6, 2), "audio": np.arange(6.0)[:, None] * 10}
    examples = dialogue_examples(utts, [0, 1, 2, 3, 4], LABELS, vectors, max_utterances=4)
    assert len(examples) == 2  # dialogue C is not among the indices
    assert [list(r) for r in (examples.ids.take([0]).values, examples.ids.take([1]).values)] == [
        ["b0", "b1", "b2"], ["a0", "a1"]]  # B first: its first utterance comes first in the indices
    batch = examples.padded()
    assert set(batch) == {"text", "audio", "label", "weight", "utterance_mask"}
    assert batch["text"].shape == (2, 4, 2) and batch["audio"].shape == (2, 4, 1) and batch["label"].shape == (2, 4)
    assert batch["text"].dtype == np.float32 and batch["label"].dtype == np.int32
    np.testing.assert_array_equal(batch["text"][0], [[4, 5], [8, 9], [0, 1], [0, 0]])  # rows of b0, b1, b2, padding
    np.testing.assert_array_equal(batch["audio"][1, :, 0], [30, 10, 0, 0])  # a0, a1
    hap, sad, neu, ang = (LABELS.index(c) for c in ("hap", "sad", "neu", "ang"))
    np.testing.assert_array_equal(batch["label"], [[hap, hap, sad, 0], [neu, ang, 0, 0]])  # exc merged into hap
    np.testing.assert_array_equal(batch["weight"], [[1, 1, 1, 0], [1, 1, 0, 0]])
    np.testing.assert_array_equal(batch["utterance_mask"], batch["weight"])
    assert list(examples.utterance_ids()) == ["b0", "b1", "b2", "a0", "a1"]
    np.testing.assert_array_equal(examples.labels(), [hap, hap, sad, neu, ang])
    # The same indices in another order give the dialogues in that order, each still in turn order.
    again = dialogue_examples(utts, [3, 4, 2, 1, 0], LABELS, vectors, max_utterances=4)
    assert list(again.utterance_ids()) == ["a0", "a1", "b0", "b1", "b2"]
    assert longest_dialogue(utts) == 3
    assert len(dialogue_examples(utts, [], LABELS, vectors, 4)) == 0


def test_refusals_name_what_is_wrong():
    utts = _corpus()
    vectors = {"text": np.zeros((6, 2))}
    with pytest.raises(ValueError, match=r"1 dialogue\(s\) have more than max_utterances = 2 utterances: B \(3\)"):
        dialogue_examples(utts, range(6), LABELS, vectors, max_utterances=2)
    with pytest.raises(ValueError, match=r"vectors\['text'\] must be \(len\(utterances\) = 6, dim\)"):
        dialogue_examples(utts, range(6), LABELS, {"text": np.zeros((5, 2))}, 3)
    clash = [*utts, _utt("a9", "A", 1)]
    with pytest.raises(ValueError, match=r"dialogue 'A' of iemocap has several utterances at turn\(s\) \[1\].*a1, a9"):
        dialogue_examples(clash, range(7), LABELS, {}, 3)
    with pytest.raises(ValueError, match="does not map to a class"):
        dialogue_examples([_utt("x", "X", 0, "fru")], [0], LABELS, {}, 3)


def test_corpora_without_dialogues_are_refused_naming_corpus_ids_and_readers():
    emodb = [Utterance(f"03a01F{i}", "emodb", "anger", "", f"/x/{i}.wav", "03", "03") for i in range(7)]
    message = (r"7 utterance\(s\) of emodb have no dialogue_id or turn_index \(e.g. 03a01F0, 03a01F1, 03a01F2, "
               r"03a01F3, 03a01F4\); dialogue-level models need a corpus whose reader knows dialogues: IEMOCAP, the "
               r"demo corpus, MELD, or a manifest with dialogue_id and turn columns")
    with pytest.raises(ValueError, match=message):
        dialogue_examples(emodb, range(7), LABELS, {}, 10)
    with pytest.raises(ValueError, match="no dialogue_id or turn_index"):
        longest_dialogue(emodb)
    no_turn = [Utterance("m0", "mine", "neu", "hi", None, "s", "s", dialogue_id="d0")]
    with pytest.raises(ValueError, match="of mine have no dialogue_id or turn_index"):
        dialogues_of(no_turn)


def test_readers_know_dialogues(demo_root, tmp_path):
    """The IEMOCAP reader (on the demo corpus) and manifests with dialogue_id and turn give whole, time-ordered
    dialogues; a split by dialogue keeps every dialogue in one part."""
    utts, _ = read_iemocap(demo_root, label_set="iemocap4")
    dialogues = dialogues_of(utts)
    assert len(dialogues) == 10 and longest_dialogue(utts) <= 12
    for _, rows in dialogues:
        starts = [utts[i].start for i in rows]
        assert starts == sorted(starts)
    (split,) = make_splits(utts, "holdout", seed=0, test_sessions=("Ses05",), unit="dialogue")
    vectors = {"text": np.random.default_rng(0).normal(size=(len(utts), 3))}
    parts = {name: dialogue_examples(utts, getattr(split, name), LABELS, vectors, longest_dialogue(utts))
             for name in ("train", "validation", "test")}
    seen = [set(e.utterance_ids()) for e in parts.values()]
    assert sum(map(len, seen)) == len(utts) and set.union(*seen) == {u.utterance_id for u in utts}
    assert {u.session for u in utts if u.utterance_id in seen[2]} == {"Ses05"}
    assert len(parts["test"]) == 2 and len(parts["validation"]) == 1  # whole dialogues: 2 of Ses05, 10% of 8
    assert {e.padded()["text"].shape[1] for e in parts.values()} == {longest_dialogue(utts)}

    path = tmp_path / "m.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["transcript", "label", "speaker", "dialogue_id", "turn", "utterance_id"])
        writer.writerows([["b", "sad", "s1", "d1", "1", "u1"], ["a", "neu", "s2", "d1", "0", "u0"]])
    manifest, _ = read_manifest(path, require_audio=False)
    assert [list(rows) for _, rows in dialogues_of(manifest)] == [[1, 0]]
