"""Dialogue-level examples: one example per conversation, its utterances' vectors in turn order.

Dialogue-level models (LPGNet) read a sequence of utterance-level vectors per dialogue and predict
every utterance's label. An example here is one dialogue: for each named vector set (``text``,
``audio``, ...) a `Ragged` row (U_i, dim) of its utterances' vectors in ``turn_index`` order, the
utterances' ``label`` (class index), ``weight`` and ``utterance_mask`` (1 for every real utterance),
and their ids. Every ragged field is padded to one ``max_utterances`` (the longest dialogue of the
whole corpus, `longest_dialogue`), so the training, validation and test parts have one padded shape
and the jitted steps never recompile.

Dialogues come in the order of their first utterance in `indices`, so the same indices always give
the same examples. A dialogue is what shares a ``dialogue_id``; two utterances of one dialogue with
the same ``turn_index`` are a `CorpusError` (they would be two dialogues under one id; the manifest
reader already reports them row by row), and a corpus without dialogues a `ConfigError` (the config
asks for a dialogue-level model the corpus cannot feed).
"""

from __future__ import annotations

import numpy as np

from mer_jax.data.examples import Examples, Ragged
from mer_jax.data.labels import LabelSet
from mer_jax.data.records import Problem, Utterance
from mer_jax.errors import ConfigError, CorpusError

DIALOGUE_READERS = "IEMOCAP, the demo corpus, MELD, or a manifest with dialogue_id and turn columns"


def dialogues_of(utterances: list[Utterance], indices=None) -> list[tuple[str, np.ndarray]]:
    """(dialogue id, utterance indices in turn order) of every dialogue among `utterances[indices]`
    (default: all), dialogues ordered by their first utterance in `indices`."""
    indices = np.arange(len(utterances)) if indices is None else np.asarray(indices, np.int64)
    _require_dialogues(utterances, indices)
    members: dict[str, list[int]] = {}
    for i in indices:
        members.setdefault(utterances[i].dialogue_id, []).append(int(i))
    dialogues = []
    for dialogue_id, rows in members.items():
        turns = [utterances[i].turn_index for i in rows]
        if len(set(turns)) != len(turns):
            repeated = sorted({t for t in turns if turns.count(t) > 1})
            clash = [utterances[i].utterance_id for i in rows if utterances[i].turn_index in repeated][:5]
            corpus = utterances[rows[0]].corpus
            raise CorpusError([Problem(corpus, None, f"dialogue {dialogue_id!r} of {corpus} has several utterances "
                                       f"at turn(s) {repeated[:5]} (e.g. {', '.join(clash)}): each turn of a "
                                       "dialogue must be one utterance (are two dialogues sharing an id?)")])
        dialogues.append((dialogue_id, np.array(sorted(rows, key=lambda i: utterances[i].turn_index), np.int64)))
    return dialogues


def longest_dialogue(utterances: list[Utterance]) -> int:
    """The number of utterances of the corpus' longest dialogue: the padded size that fits every part."""
    return max((len(rows) for _, rows in dialogues_of(utterances)), default=0)


def dialogue_examples(utterances: list[Utterance], indices, label_set: LabelSet, vectors: dict[str, np.ndarray],
                      max_utterances: int) -> Examples:
    """One example per dialogue of `utterances[indices]`.

    `vectors[name]` is (len(utterances), dim), row i the vector of utterance i; each becomes a float32
    ragged field ``name`` of (U_i, dim) rows. Every ragged field is padded to `max_utterances`; a
    longer dialogue is an error (pass `longest_dialogue` of the whole corpus).
    """
    dialogues = dialogues_of(utterances, indices)
    for name, array in vectors.items():
        if array.ndim != 2 or len(array) != len(utterances):
            raise ValueError(f"vectors[{name!r}] must be (len(utterances) = {len(utterances)}, dim); "
                             f"got shape {array.shape}")
    too_long = [(d, len(rows)) for d, rows in dialogues if len(rows) > max_utterances]
    if too_long:
        listed = ", ".join(f"{d} ({n})" for d, n in too_long[:5])
        raise ValueError(f"{len(too_long)} dialogue(s) have more than max_utterances = {max_utterances} utterances: "
                         f"{listed}; pad to longest_dialogue(utterances) of the whole corpus")
    rows = [r for _, r in dialogues]

    def ragged(values_of, row_shape=(), dtype=np.float32):
        return Ragged.from_rows([np.asarray(values_of(r), dtype) for r in rows], row_shape, dtype)

    fields = {name: ragged(lambda r, a=array: a[r], (array.shape[1],)) for name, array in vectors.items()}
    fields["label"] = ragged(lambda r: [_class(label_set, utterances[i]) for i in r], dtype=np.int32)
    fields["weight"] = ragged(lambda r: np.ones(len(r)))
    fields["utterance_mask"] = ragged(lambda r: np.ones(len(r)))
    ids = ragged(lambda r: [utterances[i].utterance_id for i in r], dtype=np.str_)
    return Examples(ids, fields, {name: max_utterances for name in fields})


def _class(label_set: LabelSet, utterance: Utterance) -> int:
    index = label_set.index(utterance.label)
    if index is None:
        raise ValueError(f"utterance {utterance.utterance_id} of {utterance.corpus} has label {utterance.label!r}, "
                         f"which label set {label_set.name} does not map to a class")
    return index


def _require_dialogues(utterances: list[Utterance], indices: np.ndarray) -> None:
    lacking = [utterances[i] for i in indices if utterances[i].dialogue_id is None or utterances[i].turn_index is None]
    if lacking:
        corpora = ", ".join(sorted({u.corpus for u in lacking}))
        shown = ", ".join(u.utterance_id for u in lacking[:5])
        raise ConfigError(
            f"{len(lacking)} utterance(s) of {corpora} have no dialogue_id or turn_index (e.g. {shown}); "
            f"dialogue-level models need a corpus whose reader knows dialogues: {DIALOGUE_READERS}")
