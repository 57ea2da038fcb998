"""A pretrained speech encoder as the dynamic-fusion model's audio branch and LPGNet (Frame)'s acoustic
frames (``audio.encoder``).

Oracles: transformers' PyTorch Wav2Vec2Model and Wav2Vec2FeatureExtractor on the same checkpoint
(normalised waveforms, every hidden state, their softmax-weighted sum); the optimiser's groups and a
frozen encoder that stays at its pretrained weights; the `mer-jax` command training and predicting
from waveforms."""

import json
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mer_jax.config import base_config  # noqa: E402
from mer_jax.models.registry import build_model  # noqa: E402
from mer_jax.models.speech_encoder import build_speech_branch  # noqa: E402
from mer_jax.training.optimizer import frozen_groups, make_optimizer, parameter_groups  # noqa: E402
from mer_jax.training.steps import SplitModel  # noqa: E402
from test_cli import TINY, mer_jax_here  # noqa: E402

LENGTHS = np.array([4000, 2500, 1200])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small random wav2vec2 checkpoint folder with its feature extractor settings, as the hub has them."""
    folder = tmp_path_factory.mktemp("speech") / "tiny-wav2vec2"
    config = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                         intermediate_size=48, conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3),
                                         conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
                                         num_conv_pos_embedding_groups=4)
    torch.manual_seed(0)
    model = transformers.Wav2Vec2Model(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(folder)
    return folder, model


def _audio_section(folder, layer="weighted"):
    return ml_collections.ConfigDict(dict(encoder=str(folder), layer=layer))


@pytest.mark.parametrize("layer", ["weighted", "2"])
def test_speech_branch_equals_transformers_on_padded_waveforms(checkpoint, layer):
    folder, model = checkpoint
    rng = np.random.default_rng(1)
    waves = [rng.normal(size=n).astype(np.float32) * 0.3 + 0.05 for n in LENGTHS]
    branch = build_speech_branch(_audio_section(folder, layer), dtype="float32", frozen=True, rngs=nnx.Rngs(0))
    if layer == "weighted":
        branch.layer_weights[...] = jnp.array([0.3, -1.0, 2.0, 0.5])
    padded = np.zeros((len(waves), LENGTHS.max()), np.float32)
    for row, w in enumerate(waves):
        padded[row, :len(w)] = w
    states, mask = branch(jnp.asarray(padded), jnp.asarray(LENGTHS))

    inputs = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)(
        waves, sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(inputs.input_values, attention_mask=inputs.attention_mask, output_hidden_states=True).hidden_states
    hidden = np.stack([h.numpy() for h in hidden])
    if layer == "weighted":
        expected = np.einsum("l,lbfh->bfh", jax.nn.softmax(np.array([0.3, -1.0, 2.0, 0.5])), hidden)
    else:
        expected = hidden[2]
    frames = model._get_feat_extract_output_lengths(torch.tensor(LENGTHS)).numpy()
    np.testing.assert_array_equal(np.asarray(mask).sum(1), frames)
    for row, n in enumerate(frames):
        np.testing.assert_allclose(np.asarray(states)[row, :n], expected[row, :n], atol=1e-4)


def _speech_config(folder, model="dynamic_fusion", **train):
    config = base_config(model)
    config.audio.encoder = str(folder)
    config.model.update({"d_model": 32} if model == "dynamic_fusion" else {"hidden": 16})
    config.text.update(encoder="transformer", hidden=32)
    config.train.update(train)
    return config


@pytest.mark.parametrize("model", ["dynamic_fusion", "lpgnet_frame"])
def test_the_speech_encoder_has_its_own_learning_rate_and_stays_pretrained_when_frozen(checkpoint, model):
    folder, _ = checkpoint
    config = _speech_config(folder, model, freeze_audio_encoder=True, audio_encoder_lr=1e-3, lr=1e-2)
    model = build_model(config, {"num_classes": 4, "vocab_size": 50})
    split = SplitModel.of(model, "float32")
    groups = parameter_groups(split.params, model.encoder_modules, model.audio_encoder_modules)
    labels = jax.tree_util.tree_leaves_with_path(groups)
    speech = {jax.tree_util.keystr(p) for p, g in labels if g == "audio_encoder"}
    assert speech and all("speech_encoder" in p for p in speech)
    assert {g for p, g in labels if "layer_weights" in jax.tree_util.keystr(p)} == {"rest"}  # the mix learns
    assert frozen_groups(config.train) == ("audio_encoder",)

    optimizer = make_optimizer(config.train, 10, groups)
    grads = jax.tree.map(jnp.ones_like, split.params)
    updates, _ = optimizer.update(grads, optimizer.init(split.params), split.params)
    for (path, update), (_, group) in zip(jax.tree_util.tree_leaves_with_path(updates), labels):
        assert bool(jnp.all(update == 0)) == (group == "audio_encoder"), jax.tree_util.keystr(path)


def test_cli_trains_predicts_and_exports_through_a_speech_encoder(checkpoint, demo_root, demo_cache, tmp_path):
    """Train and predict from waveforms; the exported folder predicts the same without the checkpoint."""
    from mer_jax import EmotionRecognizer  # noqa: PLC0415

    folder = shutil.copytree(checkpoint[0], tmp_path / "speech_checkpoint")
    workdir = tmp_path / "run"
    result = mer_jax_here("train", "--config=configs/demo.py", f"--workdir={workdir}", f"--config.data.root={demo_root}",
                     f"--config.data.cache_dir={demo_cache}", f"--config.audio.encoder={folder}", *TINY,
                     "--config.train.epochs=1", "--config.features.length_buckets=1")  # one compiled step shape
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((workdir / "fold_metrics.json").read_text())
    assert 0.0 <= metrics["test"]["wa"] <= 1.0 and len(metrics["history"]) == 1
    wav = next(demo_root.glob("Session1/sentences/wav/*/*.wav"))
    result = mer_jax_here("predict", f"--workdir={workdir}", f"--audio={wav}", "--text=I am so happy today")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "probabilities" in result.stdout or any(c in result.stdout for c in ("ang", "hap", "neu", "sad"))

    expected = EmotionRecognizer.from_run(workdir).predict(wav, "I am so happy today")
    assert mer_jax_here("export", f"--workdir={workdir}", f"--out={tmp_path / 'exported'}").returncode == 0
    shutil.rmtree(folder)  # (test_export loads exported folders in a fresh process; here this one is enough)
    assert json.loads((tmp_path / "exported" / "config.json").read_text())["audio"]["encoder"] == "speech_encoder"
    got = EmotionRecognizer.from_pretrained(tmp_path / "exported").predict(wav, "I am so happy today")
    np.testing.assert_allclose([got["probabilities"][c] for c in expected["probabilities"]],
                               list(expected["probabilities"].values()), atol=1e-5)


def test_frozen_speech_vectors_are_the_encoders_mean_states_and_lpgnet_trains_on_them(checkpoint, demo_root, demo_cache,
                                                                                   tmp_path):
    from mer_jax.configs import lpgnet_demo  # noqa: PLC0415
    from mer_jax.training.experiment import load_experiment_data  # noqa: PLC0415
    from mer_jax.training.loop import load_best, train_fold  # noqa: PLC0415
    from mer_jax.training.utterance_features import Trainer, audio_vectors  # noqa: PLC0415

    folder, model = checkpoint
    config = lpgnet_demo.get_config()
    config.data.update(root=str(demo_root), cache_dir=str(demo_cache))
    config.audio.update(encoder=str(folder), layer="1")
    config.utterance_features.audio = "speech_frozen"
    config.features.max_frames = 50  # 8000 samples
    data = load_experiment_data(config)
    vectors = audio_vectors(config, data, data.splits[0], tmp_path, Trainer(train_fold, load_best))
    assert data.audio is None and vectors.shape == (len(data.utterances), 32)
    extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)
    for i in (0, 7, 30):
        wave = data.waveforms.frames[data.waveforms.lengths[:i].sum():][: data.waveforms.lengths[i]]
        assert len(wave) <= 8000
        inputs = extractor([wave], sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            expected = model(inputs.input_values, output_hidden_states=True).hidden_states[1][0].mean(0).numpy()
        np.testing.assert_allclose(vectors[i], expected, atol=1e-4)

    result = mer_jax_here("train", "--config=configs/lpgnet_demo.py", f"--workdir={tmp_path / 'lpgnet'}",
                     f"--config.data.root={demo_root}", f"--config.data.cache_dir={demo_cache}",
                     f"--config.audio.encoder={folder}", "--config.utterance_features.audio=speech_frozen",
                     "--config.model.modalities=audio", "--config.features.max_frames=50", "--config.train.epochs=2",
                     "--config.train.seeds=2", "--config.model.hidden=16")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(json.loads((tmp_path / "lpgnet" / "fold_metrics.json").read_text())["history"]) == 2


@pytest.mark.parametrize("model", ["lpgnet_demo", "linear_iemocap"])
def test_a_speech_encoder_is_refused_where_nothing_reads_it(tmp_path, demo_root, model):
    result = mer_jax_here("train", f"--config=configs/{model}.py", f"--workdir={tmp_path / 'x'}",
                     f"--config.data.root={demo_root}", "--config.audio.encoder=facebook/wav2vec2-base",
                     "--config.utterance_features.audio=bilstm")
    assert result.returncode != 0 and "speech_frozen / speech_finetuned read the speech encoder" in result.stderr


def test_lpgnet_frame_reads_the_speech_encoders_states_as_its_acoustic_frames(checkpoint):
    """LPGNet (Frame) with ``audio.encoder``: its audio positions are transformers' hidden states of the
    chosen layer over each utterance's real frames, truncated to ``model.length``."""
    from mer_jax.models.lpgnet_frame import fit_length  # noqa: PLC0415

    folder, model = checkpoint
    config = base_config("lpgnet_frame")
    config.audio.update(encoder=str(folder), layer="2")
    config.model.update(modalities="audio", hidden=16, length=150, dropout=0.0)
    frame = build_model(config, {"num_classes": 4, "vocab_size": 30})
    frame.eval()
    rng = np.random.default_rng(2)
    waves = [rng.normal(size=n).astype(np.float32) * 0.5 for n in LENGTHS]
    padded = np.zeros((len(waves), LENGTHS.max()), np.float32)
    for row, w in enumerate(waves):
        padded[row, :len(w)] = w
    ours = frame({"waveform": jnp.asarray(padded), "waveform_length": jnp.asarray(LENGTHS)})

    inputs = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)(
        waves, sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(inputs.input_values, attention_mask=inputs.attention_mask,
                       output_hidden_states=True).hidden_states[2].numpy()
    frames = model._get_feat_extract_output_lengths(torch.tensor(LENGTHS)).numpy()
    assert frames.max() > 150  # the longest utterance is truncated
    states, mask = fit_length(jnp.asarray(states), jnp.arange(states.shape[1])[None] < frames[:, None], 150)
    positions = frame.lpgnet.positions({"audio": states}, {"audio": mask})
    for name, logits in positions.items():
        expected = (logits * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        np.testing.assert_allclose(ours[name], expected, atol=1e-4)


def test_cli_trains_lpgnet_frame_on_a_speech_encoders_frames(checkpoint, demo_root, demo_cache, tmp_path):
    folder, _ = checkpoint
    result = mer_jax_here("train", "--config=configs/lpgnet_frame_iemocap.py", f"--workdir={tmp_path / 'run'}",
                     f"--config.data.root={demo_root}", f"--config.data.cache_dir={demo_cache}",
                     f"--config.audio.encoder={folder}", "--config.model.modalities=audio",
                     "--config.model.hidden=16", "--config.model.length=64", "--config.train.epochs=1",
                     "--config.features.length_buckets=1", "--config.train.seeds=1",  # the config's are 10
                     "--config.train.batch_size=16", "--config.features.max_frames=40")
    assert result.returncode == 0, result.stderr[-3000:]
    assert 0.0 <= json.loads((tmp_path / "run" / "fold_metrics.json").read_text())["test"]["wa"] <= 1.0

