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

Units (``unit``): with ``utterance`` (utterance-level models) the random draws pick utterances; with
``dialogue`` (dialogue-level models, which read whole conversations) they pick whole dialogues, so
that no dialogue is cut between parts: ``random`` draws a fraction of the dialogues for the test
part, and validation is a fraction of the training part's dialogues under every protocol (sessions
and partitions already keep their dialogues whole). A dialogue is what shares a ``dialogue_id``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mer_jax.data.records import Utterance
from mer_jax.errors import ConfigError

PROTOCOLS = ("random", "holdout", "loso", "official", "cross_corpus")
UNITS = ("utterance", "dialogue")


@dataclasses.dataclass(frozen=True)
class Split:
    """Indices into the utterance list, and a human-readable name of the protocol."""

    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def make_splits(utterances: list[Utterance], protocol: str, *, seed: int, test_fraction: float = 0.2,
                validation_fraction: float = 0.1, test_sessions: tuple[str, ...] = (),
                unit: str = "utterance") -> list[Split]:
    """The folds of `protocol`: one Split for ``random`` and ``holdout``, one per session for ``loso``.

    `unit` is what the random draws pick: ``utterance``, or ``dialogue`` (whole dialogues)."""
    if unit not in UNITS:
        raise ValueError(f"unknown split unit {unit!r}; choose one of {UNITS}")
    groups = _dialogue_ids(utterances) if unit == "dialogue" else None
    of = "" if groups is None else "'s dialogues"
    sessions = np.array([u.session for u in utterances])
    everything = np.arange(len(utterances))
    if protocol == "random":
        rng = np.random.default_rng(seed)
        if groups is None:
            order = rng.permutation(everything)
            n_test = int(round(test_fraction * len(order)))
            test, rest = np.sort(order[:n_test]), order[n_test:]
            drawn = ""
        else:
            names = _in_order(groups)
            chosen = rng.permutation(len(names))[: int(round(test_fraction * len(names)))]
            held = np.isin(groups, names[chosen])
            test, rest = everything[held], everything[~held]
            drawn = " of dialogues"
        name = (f"random {1 - test_fraction:.0%}:{test_fraction:.0%} split{drawn} (seed {seed}; speakers "
                f"overlap), validation {validation_fraction:.0%} of the training part{of}")
        return [_carve_validation(name, rest, test, validation_fraction, seed, groups)]
    sessions_of = "sessions" if groups is None else "sessions' dialogues"
    if groups is not None and protocol in ("holdout", "loso"):
        _require_one_session_per_dialogue(utterances, groups, sessions)
    if protocol == "holdout":
        unknown = set(test_sessions) - set(sessions)
        if not test_sessions or unknown:
            raise ConfigError(f"holdout needs test_sessions from {sorted(set(sessions))}; got {test_sessions}")
        held = np.isin(sessions, test_sessions)
        name = (f"held-out session(s) {', '.join(test_sessions)} (speaker-independent), validation "
                f"{validation_fraction:.0%} of the training {sessions_of}")
        return [_carve_validation(name, everything[~held], everything[held], validation_fraction, seed, groups)]
    if protocol == "loso":
        folds = []
        for session in sorted(set(sessions)):
            held = sessions == session
            name = (f"leave-one-session-out, test {session} (speaker-independent), validation "
                    f"{validation_fraction:.0%} of the training {sessions_of}")
            folds.append(_carve_validation(name, everything[~held], everything[held], validation_fraction, seed,
                                           groups))
        return folds
    if protocol == "official":
        partitions = np.array([u.partition for u in utterances])
        parts = [everything[partitions == name] for name in ("train", "dev", "test")]
        if not all(len(p) for p in parts):
            raise ConfigError("the official protocol needs a corpus with train, dev and test partitions (e.g. MELD)")
        if groups is not None:
            train, dev, test = (set(groups[p]) for p in parts)
            shared = (train & dev) | ((train | dev) & test)
            if shared:
                raise ConfigError(f"the official partitions share dialogue(s) {sorted(shared)[:5]}: a dialogue must "
                                 "lie in one partition")
        return [Split("official train / dev / test partition (dev selects the checkpoint)", *parts)]
    if protocol == "cross_corpus":  # a trained run scored on another corpus (mer-jax evaluate --corpus=...)
        nothing = everything[:0]
        return [Split(f"cross-corpus: every one of the {len(everything)} utterances is test", nothing, nothing,
                      everything)]
    raise ConfigError(f"unknown split protocol {protocol!r}; choose one of {PROTOCOLS}")


def _carve_validation(name, train_pool, test, fraction, seed, groups=None) -> Split:
    """Hold out a seeded random `fraction` of the training pool for model selection: of its
    utterances, or of its dialogues when `groups` (every utterance's dialogue id) is given."""
    rng = np.random.default_rng([seed, 1])
    if groups is None:
        order = rng.permutation(train_pool)
        n_val = max(1, int(round(fraction * len(order))))
        return Split(name, np.sort(order[n_val:]), np.sort(order[:n_val]), np.sort(test))
    train_pool = np.sort(train_pool)
    names = _in_order(groups[train_pool])
    chosen = rng.permutation(len(names))[: max(1, int(round(fraction * len(names))))]
    held = np.isin(groups[train_pool], names[chosen])
    return Split(name, train_pool[~held], train_pool[held], np.sort(test))


def _dialogue_ids(utterances: list[Utterance]) -> np.ndarray:
    """Every utterance's dialogue id; an error naming a few utterances that have none."""
    lacking = [u for u in utterances if u.dialogue_id is None]
    if lacking:
        corpora = ", ".join(sorted({u.corpus for u in lacking}))
        raise ConfigError(f"splitting by dialogue needs every utterance's dialogue_id; {len(lacking)} utterance(s) "
                         f"of {corpora} have none (e.g. {', '.join(u.utterance_id for u in lacking[:5])}); "
                         "dialogue-level models need a corpus whose reader knows dialogues (IEMOCAP, the demo "
                         "corpus, MELD, or a manifest with dialogue_id and turn columns)")
    return np.array([u.dialogue_id for u in utterances], dtype=object)


def _require_one_session_per_dialogue(utterances, groups: np.ndarray, sessions: np.ndarray) -> None:
    """Holding out sessions keeps dialogues whole only if each dialogue lies in one session."""
    seen: dict[str, str] = {}
    split = sorted({g for g, s in zip(groups.tolist(), sessions.tolist()) if seen.setdefault(g, s) != s})
    if split:
        raise ConfigError(f"dialogue(s) {split[:5]} of {utterances[0].corpus} span several sessions, so holding out "
                         "sessions would cut them; give every utterance of a dialogue the same session (a manifest's "
                         "session column defaults to the speaker)")


def _in_order(groups: np.ndarray) -> np.ndarray:
    """The distinct dialogue ids of `groups`, in order of first appearance (a deterministic order)."""
    return np.array(list(dict.fromkeys(groups.tolist())), dtype=object)
