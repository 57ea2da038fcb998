"""Evaluation protocols: disjoint parts, validation from the training sessions, determinism."""

import dataclasses

import numpy as np
import pytest

from mer_jax.data.records import Utterance
from mer_jax.data.splits import make_splits


def _corpus(n_per_session=40):
    return [Utterance(f"Ses0{s}_{i}", "t", "neu", "x", None, f"Ses0{s}{'FM'[i % 2]}", f"Ses0{s}")
            for s in range(1, 6) for i in range(n_per_session)]


def _check_parts(split, n):
    parts = [set(split.train), set(split.validation), set(split.test)]
    assert sum(map(len, parts)) == n and set.union(*parts) == set(range(n))


def test_random_split_is_8_to_2_and_seeded():
    utts = _corpus()
    (a,), (b,), (c,) = (make_splits(utts, "random", seed=s) for s in (0, 0, 1))
    _check_parts(a, len(utts))
    assert len(a.test) == 40 and len(a.validation) == 16
    assert np.array_equal(a.test, b.test) and not np.array_equal(a.test, c.test)


def test_holdout_tests_only_the_held_out_session_and_validates_on_training_sessions():
    utts = _corpus()
    (split,) = make_splits(utts, "holdout", seed=0, test_sessions=("Ses05",))
    _check_parts(split, len(utts))
    assert {utts[i].session for i in split.test} == {"Ses05"}
    assert "Ses05" not in {utts[i].session for i in np.concatenate([split.train, split.validation])}


def test_leave_one_session_out_has_one_fold_per_session():
    utts = _corpus()
    folds = make_splits(utts, "loso", seed=0)
    assert [sorted({utts[i].session for i in f.test}) for f in folds] == [[f"Ses0{s}"] for s in range(1, 6)]
    for f in folds:
        _check_parts(f, len(utts))
        assert not {utts[i].session for i in f.validation} & {utts[i].session for i in f.test}


def test_official_protocol_uses_the_corpus_partitions():
    utts = [Utterance(f"{p}{i}", "meld", "joy", "x", None, "Ross", "S01E01", partition=p)
            for p in ("train", "dev", "test") for i in range(3)]
    (split,) = make_splits(utts, "official", seed=0)
    assert [[utts[i].partition for i in part] for part in (split.train, split.validation, split.test)] == [
        ["train"] * 3, ["dev"] * 3, ["test"] * 3]
    with pytest.raises(ValueError, match="partition"):
        make_splits(_corpus(), "official", seed=0)


def test_unknown_protocol_and_session_are_refused():
    with pytest.raises(ValueError, match="unknown split protocol"):
        make_splits(_corpus(), "kfold", seed=0)
    with pytest.raises(ValueError, match="test_sessions"):
        make_splits(_corpus(), "holdout", seed=0, test_sessions=("Ses09",))


# --- splits by dialogue (dialogue-level models) ---


def _dialogue_corpus():
    """IEMOCAP-like: 5 sessions x 8 dialogues of 5..15 turns, ids Ses0S{F,M}_improDD_{F,M}NNN."""
    rng = np.random.default_rng(7)
    utts = []
    for s in range(1, 6):
        for d in range(8):
            dialogue = f"Ses0{s}{'FM'[d % 2]}_impro{d:02d}"
            for t in range(int(rng.integers(5, 16))):
                utts.append(Utterance(f"{dialogue}_{'FM'[t % 2]}{t:03d}", "iemocap", "neu", "x", None,
                                      f"Ses0{s}{'FM'[t % 2]}", f"Ses0{s}", dialogue_id=dialogue, turn_index=t))
    return utts


def _dialogues_of(utts, part):
    return {utts[i].dialogue_id for i in part}


def _check_dialogues_whole(split, utts):
    _check_parts(split, len(utts))
    parts = [_dialogues_of(utts, p) for p in (split.train, split.validation, split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    return parts


def test_random_split_by_dialogue_draws_whole_dialogues():
    utts = _dialogue_corpus()
    (a,), (b,), (c,) = (make_splits(utts, "random", seed=s, unit="dialogue") for s in (0, 0, 1))
    train, validation, test = _check_dialogues_whole(a, utts)
    assert len(test) == 8 and len(validation) == 3 and len(train) == 29  # 20% of 40, 10% of the other 32
    assert 0.1 < len(a.test) / len(utts) < 0.3
    assert np.array_equal(a.test, b.test) and np.array_equal(a.validation, b.validation)
    assert not np.array_equal(a.test, c.test)
    assert "dialogues" in a.name and "validation 10% of the training part's dialogues" in a.name


def test_holdout_by_dialogue_keeps_session_5_whole_and_validates_on_training_dialogues():
    utts = _dialogue_corpus()
    (split,) = make_splits(utts, "holdout", seed=0, test_sessions=("Ses05",), unit="dialogue")
    train, validation, _ = _check_dialogues_whole(split, utts)
    assert set(split.test) == {i for i, u in enumerate(utts) if u.session == "Ses05"}
    assert len(validation) == 3 and len(train) == 29  # 10% of the 32 training dialogues
    assert split.name.endswith("validation 10% of the training sessions' dialogues")
    for fold in make_splits(utts, "loso", seed=0, unit="dialogue"):
        _check_dialogues_whole(fold, utts)
        assert len({utts[i].session for i in fold.test}) == 1


def test_official_by_dialogue_and_refusals():
    meld = [Utterance(f"{p}_dia{d}_utt{t}", "meld", "joy", "x", None, "Ross", "S01E01", dialogue_id=f"{p}_dia{d}",
                      turn_index=t, partition=p) for p in ("train", "dev", "test") for d in range(2) for t in range(3)]
    (split,) = make_splits(meld, "official", seed=0, unit="dialogue")
    _check_dialogues_whole(split, meld)
    lacking = r"dialogue_id; 200 utterance\(s\) of t have none \(e.g. Ses01_0, .*knows dialogues"
    with pytest.raises(ValueError, match=lacking):
        make_splits(_corpus(), "random", seed=0, unit="dialogue")
    spanning = [dataclasses.replace(u, session=u.speaker) for u in _dialogue_corpus()]  # a manifest without sessions
    with pytest.raises(ValueError, match="span several sessions"):
        make_splits(spanning, "loso", seed=0, unit="dialogue")
    with pytest.raises(ValueError, match="unit"):
        make_splits(_corpus(), "random", seed=0, unit="speaker")
