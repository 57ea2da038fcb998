"""Evaluation protocols: disjoint parts, validation from the training sessions, determinism."""

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
