"""Evaluation protocols: which utterances train, which select (validation), which test.

Validation is always carved from the training part (the training sessions or speakers), so the
test part is never used to choose an epoch or a setting. Every split is deterministic in its seed.

Protocols:

* ``random``: a seeded random train:test split over all utterances (the dynamic-fusion paper's
  8:2); speakers overlap between train and test, which the protocol name says.
* ``holdout``: the sessions named in ``test_sessions`` are the test part (e.g. IEMOCAP Session 5).
* ``loso``: leave-one-session-out cross-validation, one fold per session (5 on IEMOCAP; one per
  speaker on EmoDB, whose reader makes each speaker a session).
* ``official``: the corpus' own train / dev / test partition (MELD), dev for selection.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mer_jax.data.records import Utterance

PROTOCOLS = ("random", "holdout", "loso", "official")


@dataclasses.dataclass(frozen=True)
class Split:
    """Indices into the utterance list, and a human-readable name of the protocol."""

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def make_splits(utterances: list[Utterance], protocol: str, *, seed: int, test_fraction: float = 0.2,
                validation_fraction: float = 0.1, test_sessions: tuple[str, ...] = ()) -> list[Split]:
    """The folds of `protocol`: one Split for ``random`` and ``holdout``, one per session for ``loso``."""
    sessions = np.array([u.session for u in utterances])
    everything = np.arange(len(utterances))
    if protocol == "random":
        rng = np.random.default_rng(seed)
        order = rng.permutation(everything)
        n_test = int(round(test_fraction * len(order)))
        test, rest = np.sort(order[:n_test]), order[n_test:]
        name = (f"random {1 - test_fraction:.0%}:{test_fraction:.0%} split (seed {seed}; speakers "
                f"overlap), validation {validation_fraction:.0%} of the training part")
        return [_carve_validation(name, rest, test, validation_fraction, seed)]
    if protocol == "holdout":
        unknown = set(test_sessions) - set(sessions)
        if not test_sessions or unknown:
            raise ValueError(f"holdout needs test_sessions from {sorted(set(sessions))}; got {test_sessions}")
        held = np.isin(sessions, test_sessions)
        name = (f"held-out session(s) {', '.join(test_sessions)} (speaker-independent), validation "
                f"{validation_fraction:.0%} of the training sessions")
        return [_carve_validation(name, everything[~held], everything[held], validation_fraction, seed)]
    if protocol == "loso":
        folds = []
        for session in sorted(set(sessions)):
            held = sessions == session
            name = (f"leave-one-session-out, test {session} (speaker-independent), validation "
                    f"{validation_fraction:.0%} of the training sessions")
            folds.append(_carve_validation(name, everything[~held], everything[held], validation_fraction, seed))
        return folds
    if protocol == "official":
        partitions = np.array([u.partition for u in utterances])
        parts = [everything[partitions == name] for name in ("train", "dev", "test")]
        if not all(len(p) for p in parts):
            raise ValueError("the official protocol needs a corpus with train, dev and test partitions (e.g. MELD)")
        return [Split("official train / dev / test partition (dev selects the checkpoint)", *parts)]
    raise ValueError(f"unknown split protocol {protocol!r}; choose one of {PROTOCOLS}")


def _carve_validation(name, train_pool, test, fraction, seed) -> Split:
    """Hold out a seeded random `fraction` of the training pool for model selection."""
    rng = np.random.default_rng([seed, 1])
    order = rng.permutation(train_pool)
    n_val = max(1, int(round(fraction * len(order))))
    return Split(name, np.sort(order[n_val:]), np.sort(order[:n_val]), np.sort(test))
