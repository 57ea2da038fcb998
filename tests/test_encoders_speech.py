"""Flax wav2vec2 / HuBERT / WavLM / data2vec-audio against transformers' PyTorch models (the oracle),
built from small random configs of every variant (adapters and HuBERT's batch-normed positional
convolution included) and loaded through the factory; strict loading with both weight-norm namings;
WavLM's position buckets and first-layer bias table; the waveform preprocessing against
transformers' Wav2Vec2FeatureExtractor."""

import inspect
import json
import os

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mer_jax import encoders  # noqa: E402

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
THREE_CONVS = dict(conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2))
VARIANTS = {
    "wav2vec2-base-group": ("Wav2Vec2", dict(**THREE_CONVS, num_conv_pos_embeddings=16,
                                             num_conv_pos_embedding_groups=4)),
    "wav2vec2-base-layer-bias": ("Wav2Vec2", dict(conv_dim=(12, 20, 16), conv_kernel=(8, 4, 2), conv_stride=(4, 3, 1),
                                                  conv_bias=True, feat_extract_norm="layer", hidden_act="gelu_new",
                                                  num_conv_pos_embeddings=5, num_conv_pos_embedding_groups=2)),
    "wav2vec2-stable-layer": ("Wav2Vec2", dict(conv_dim=(16, 24, 16), conv_kernel=(7, 4, 2), conv_stride=(3, 2, 2),
                                               conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True,
                                               num_conv_pos_embeddings=7, num_conv_pos_embedding_groups=2)),
    "wav2vec2-stable-group": ("Wav2Vec2", dict(**THREE_CONVS, do_stable_layer_norm=True, num_conv_pos_embeddings=4,
                                               num_conv_pos_embedding_groups=8)),
    "hubert-base-no-projection-norm": ("Hubert", dict(**THREE_CONVS, feat_proj_layer_norm=False,
                                                      num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)),
    "hubert-stable-layer": ("Hubert", dict(**THREE_CONVS, conv_bias=True, feat_extract_norm="layer",
                                           do_stable_layer_norm=True, num_conv_pos_embeddings=9,
                                           num_conv_pos_embedding_groups=4)),
    "data2vec-audio-odd": ("Data2VecAudio", dict(**THREE_CONVS, num_conv_pos_embeddings=3, conv_pos_kernel_size=5,
                                                 num_conv_pos_embedding_groups=4)),
    "data2vec-audio-even-bias": ("Data2VecAudio", dict(conv_dim=(12, 20), conv_kernel=(8, 4), conv_stride=(4, 3),
                                                       conv_bias=True, num_conv_pos_embeddings=2,
                                                       conv_pos_kernel_size=6, num_conv_pos_embedding_groups=2)),
    # WavLM's 79 frames reach past max_bucket_distance, so every bucket regime is exercised.
    "wavlm-base-group": ("WavLM", dict(**THREE_CONVS, num_buckets=16, max_bucket_distance=20,
                                       num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)),
    "wavlm-base-layer-bias": ("WavLM", dict(conv_dim=(12, 20), conv_kernel=(8, 4), conv_stride=(4, 3), conv_bias=True,
                                            feat_extract_norm="layer", num_buckets=10, max_bucket_distance=7,
                                            num_conv_pos_embeddings=6, num_conv_pos_embedding_groups=2)),
    "wavlm-stable-layer-bias": ("WavLM", dict(conv_dim=(12, 20, 16), conv_kernel=(8, 4, 2), conv_stride=(4, 3, 1),
                                              conv_bias=True, feat_extract_norm="layer", do_stable_layer_norm=True,
                                              num_buckets=32, max_bucket_distance=50, num_conv_pos_embeddings=5,
                                              num_conv_pos_embedding_groups=2)),
    # Adapters: the output adapter (down-projected when output_hidden_size differs; even and odd
    # kernels and strides), MMS's per-layer adapters of the pre-norm layers (WavLM's layers have none,
    # HuBERT no output adapter: both ignore the fields, as transformers does).
    "wav2vec2-base-adapter-projected": ("Wav2Vec2", dict(**THREE_CONVS, num_conv_pos_embeddings=16,
                                                         num_conv_pos_embedding_groups=4, add_adapter=True,
                                                         output_hidden_size=24, num_adapter_layers=2)),
    "wav2vec2-stable-attention-adapters": ("Wav2Vec2", dict(**THREE_CONVS, do_stable_layer_norm=True,
                                                            num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=8,
                                                            adapter_attn_dim=8, add_adapter=True, adapter_kernel_size=3,
                                                            adapter_stride=3, num_adapter_layers=1)),
    "data2vec-audio-adapter": ("Data2VecAudio", dict(**THREE_CONVS, num_conv_pos_embeddings=3, conv_pos_kernel_size=5,
                                                     num_conv_pos_embedding_groups=4, add_adapter=True,
                                                     num_adapter_layers=3)),
    "wavlm-stable-adapter": ("WavLM", dict(**THREE_CONVS, do_stable_layer_norm=True, num_buckets=16,
                                           max_bucket_distance=20, num_conv_pos_embeddings=16,
                                           num_conv_pos_embedding_groups=4, add_adapter=True, output_hidden_size=16,
                                           adapter_kernel_size=2, num_adapter_layers=2, adapter_attn_dim=8)),
    "hubert-stable-attention-adapters": ("Hubert", dict(**THREE_CONVS, do_stable_layer_norm=True,
                                                        num_conv_pos_embeddings=9, num_conv_pos_embedding_groups=4,
                                                        adapter_attn_dim=6, add_adapter=True)),
    "hubert-positional-batch-norm": ("Hubert", dict(**THREE_CONVS, conv_pos_batch_norm=True,
                                                    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)),
}

LENGTHS = np.array([1600, 1234, 517])
MASK = (np.arange(LENGTHS.max())[None] < LENGTHS[:, None]).astype(np.int64)
WAVES = (np.random.default_rng(0).normal(size=MASK.shape) * MASK).astype(np.float32)


def torch_model(family, config, head="Model", **extra):
    """A random transformers model with every parameter perturbed (LayerNorm scales included), and batch
    norms' running averages, in eval mode; WavLM's bias table and gate constants strongly, so that a
    wrong bias or gate shows far above 1e-4."""
    config = getattr(transformers, f"{family}Config")(**TINY, **config, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, f"{family}{head}")(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_((1.0 if "rel_attn_embed" in name or "gru_rel_pos_const" in name else 0.1) * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.add_(torch.randn_like(b))
            elif name.endswith("running_var"):
                b.mul_(torch.rand_like(b) + 0.5)
    return model


def run_torch(model, waves=WAVES, mask=MASK):
    with torch.no_grad():
        return model(torch.tensor(waves), attention_mask=None if mask is None else torch.tensor(mask),
                     output_hidden_states=True)


def max_diff(ours, theirs, frame_mask):
    return float(np.abs(np.asarray(ours, np.float32) - theirs.float().numpy())[frame_mask].max())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_pytorch_on_padded_batch(variant, tmp_path):
    family, config = VARIANTS[variant]
    model = torch_model(family, config)
    model.save_pretrained(tmp_path)
    encoder, hf_config = encoders.from_pretrained(tmp_path)
    assert type(encoder).model_type == hf_config.model_type

    expected = run_torch(model)
    got = encoder(jnp.asarray(WAVES), jnp.asarray(MASK), output_hidden_states=True)

    adapted = "add_adapter" in inspect.signature(model._get_feat_extract_output_lengths).parameters
    without_adapter = {"add_adapter": False} if adapted else {}
    output_lengths = model._get_feat_extract_output_lengths(torch.tensor(LENGTHS)).numpy()
    np.testing.assert_array_equal(np.asarray(encoder.config.frame_lengths(LENGTHS)),
                                  model._get_feat_extract_output_lengths(torch.tensor(LENGTHS), **without_adapter))
    if adapted:
        np.testing.assert_array_equal(np.asarray(encoder.config.output_lengths(LENGTHS)), output_lengths)
    frames, hidden_frames = expected.last_hidden_state.shape[1], expected.hidden_states[0].shape[1]
    np.testing.assert_array_equal(np.asarray(got.frame_mask),
                                  model._get_feature_vector_attention_mask(frames, torch.tensor(MASK)).numpy())
    np.testing.assert_array_equal(np.asarray(got.hidden_states_mask), model._get_feature_vector_attention_mask(
        hidden_frames, torch.tensor(MASK), **without_adapter).numpy())
    real, hidden_real = np.asarray(got.frame_mask), np.asarray(got.hidden_states_mask)
    assert real.sum(1).min() < frames and hidden_real.sum(1).min() < hidden_frames, "the batch must hold padding"
    assert got.last_hidden_state.shape == expected.last_hidden_state.shape
    assert max_diff(got.last_hidden_state, expected.last_hidden_state, real) <= 1e-4
    assert len(got.hidden_states) == len(expected.hidden_states) == TINY["num_hidden_layers"] + 1
    for layer, (ours, theirs) in enumerate(zip(got.hidden_states, expected.hidden_states, strict=True)):
        assert max_diff(ours, theirs, hidden_real) <= 1e-4, f"hidden state {layer}"


def test_without_attention_mask_every_frame_is_real(tmp_path):
    model = torch_model(*VARIANTS["wav2vec2-base-group"])
    model.save_pretrained(tmp_path)
    encoder, _ = encoders.from_pretrained(tmp_path)
    expected = run_torch(model, mask=None)
    got = jax.jit(lambda w: encoder(w).last_hidden_state)(jnp.asarray(WAVES))
    everything = np.ones(got.shape[:2], bool)
    assert max_diff(got, expected.last_hidden_state, everything) <= 1e-4


@pytest.fixture
def wav2vec2_dir(tmp_path):
    model = torch_model(*VARIANTS["wav2vec2-stable-layer"])
    model.save_pretrained(tmp_path)
    return model, tmp_path


def test_old_weight_norm_names_in_pytorch_bin(wav2vec2_dir):
    model, folder = wav2vec2_dir
    (folder / "model.safetensors").unlink()
    legacy = {name.replace("parametrizations.weight.original0", "weight_g")
              .replace("parametrizations.weight.original1", "weight_v"): t for name, t in model.state_dict().items()}
    assert "encoder.pos_conv_embed.conv.weight_g" in legacy
    torch.save(legacy, folder / "pytorch_model.bin")
    encoder, _ = encoders.from_pretrained(folder)
    got = encoder(jnp.asarray(WAVES), jnp.asarray(MASK))
    assert max_diff(got.last_hidden_state, run_torch(model).last_hidden_state, np.asarray(got.frame_mask)) <= 1e-4


def test_weight_norm_keeps_g_and_v_as_parameters(wav2vec2_dir):
    _, folder = wav2vec2_dir
    encoder, _ = encoders.from_pretrained(folder)
    conv = encoder.encoder.pos_conv_embed.conv
    tensors = load_file(folder / "model.safetensors")
    np.testing.assert_array_equal(conv.weight_g[...], tensors["encoder.pos_conv_embed.conv.parametrizations.weight.original0"])
    np.testing.assert_array_equal(conv.weight_v[...], tensors["encoder.pos_conv_embed.conv.parametrizations.weight.original1"])


def test_missing_unexpected_and_misshaped_tensors_are_named(wav2vec2_dir):
    _, folder = wav2vec2_dir
    tensors = load_file(folder / "model.safetensors")
    tensors.pop("encoder.layers.1.attention.k_proj.bias")
    tensors["encoder.layers.0.attention.gate.weight"] = np.zeros(2, np.float32)
    tensors["encoder.pos_conv_embed.conv.parametrizations.weight.original0"] = np.ones((1, 1, 8), np.float32)
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(encoders.CheckpointMismatchError) as error:
        encoders.from_pretrained(folder)
    message = str(error.value)
    assert "missing from the checkpoint: encoder.layers.1.attention.k_proj.bias" in message
    assert "unexpected in the checkpoint: encoder.layers.0.attention.gate.weight" in message
    assert ("encoder.pos_conv_embed.conv.parametrizations.weight.original0: checkpoint (1, 1, 8), "
            "encoder expects (1, 1, 7)") in message


@pytest.mark.parametrize("family, head, extra", [
    ("Wav2Vec2", "ForCTC", {}),
    ("Hubert", "ForSequenceClassification", dict(use_weighted_layer_sum=True, classifier_proj_size=8)),
])
def test_task_checkpoints_load_their_base_model(family, head, extra, tmp_path):
    model = torch_model(family, VARIANTS["wav2vec2-base-group"][1], head=head, **extra)
    model.save_pretrained(tmp_path)
    assert any(name.startswith(model.base_model_prefix + ".") for name in load_file(tmp_path / "model.safetensors"))
    encoder, _ = encoders.from_pretrained(tmp_path)
    got = encoder(jnp.asarray(WAVES), jnp.asarray(MASK))
    expected = run_torch(getattr(model, model.base_model_prefix))
    assert max_diff(got.last_hidden_state, expected.last_hidden_state, np.asarray(got.frame_mask)) <= 1e-4


def config_dict(variant, **extra):
    family, config = VARIANTS[variant]
    return {**getattr(transformers, f"{family}Config")(**TINY, **config).to_dict(), **extra}


def test_dropout_rates_come_from_the_config_and_follow_train_eval():
    config = config_dict("hubert-stable-layer", hidden_dropout=0.2, attention_dropout=0.3, activation_dropout=0.4,
                         feat_proj_dropout=0.5, layerdrop=0.0)
    encoder = encoders.from_config(config, rngs=nnx.Rngs(0))
    rates = sorted(m.rate for _, m in nnx.iter_graph(encoder) if isinstance(m, nnx.Dropout))
    # feature projection; encoder input and LayerDrop; per layer: attention, residual, two feed-forward
    assert rates == sorted([0.5, 0.2, 0.0] + [0.3, 0.2, 0.4, 0.2] * 2)
    waves = jnp.asarray(WAVES)
    assert not np.allclose(encoder(waves).last_hidden_state, encoder(waves).last_hidden_state)
    encoder.eval()
    np.testing.assert_array_equal(encoder(waves).last_hidden_state, encoder(waves).last_hidden_state)


def test_layerdrop_skips_layers_in_training_only():
    config = config_dict("wav2vec2-base-group", hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                         layerdrop=1.0)
    encoder = encoders.from_config(config, rngs=nnx.Rngs(0))
    first, *rest = encoder(jnp.asarray(WAVES), output_hidden_states=True).hidden_states
    assert all(np.array_equal(first, h) for h in rest)
    encoder.eval()
    first, *rest = encoder(jnp.asarray(WAVES), output_hidden_states=True).hidden_states
    assert not any(np.allclose(first, h) for h in rest)


def assert_bfloat16_matches_pytorch(model, folder):
    """Our encoder computing in bf16 against the same checkpoint run by PyTorch in bf16 (the oracle), and
    the control that one perturbed weight fails the same comparison.

    Both compute the same bf16-rounded weights in bf16, but round their intermediate results at other
    places (XLA fuses operations and keeps some in float32; torch's CPU kernels accumulate in float32),
    so their outputs differ by bf16 rounding, not by nothing. How much bf16 rounding moves this model's
    output is measured here, on this input: torch's own bf16 output against its float32 output. Ours may
    differ from torch's bf16 output by about as much (measured: 1.05x for wav2vec2, 0.95x for WavLM, in
    the mean over real frames; 1.6x and 1.4x in the maximum), not by more: the tolerance is 1.5x the mean
    and 3x the maximum. The control, a 0.05 shift (std) of one bias vector of the first layer, gives
    about 5x the mean."""
    encoder16, _ = encoders.from_pretrained(folder, dtype=jnp.bfloat16)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nnx.state(encoder16, nnx.Param)))
    graph, _ = nnx.split(encoder16)
    forward = jax.jit(lambda s, w, m: nnx.merge(graph, s)(w, m))
    reference = run_torch(model).last_hidden_state.numpy()  # float32
    with torch.no_grad():
        theirs = model.to(torch.bfloat16)(torch.tensor(WAVES).to(torch.bfloat16), attention_mask=torch.tensor(MASK))
    theirs = theirs.last_hidden_state.float().numpy()

    def compare():
        out = forward(nnx.state(encoder16), WAVES, MASK)
        assert out.last_hidden_state.dtype == jnp.bfloat16
        real = np.asarray(out.frame_mask)
        ours = np.asarray(out.last_hidden_state, np.float32)
        rounding = np.abs(theirs - reference)[real]  # what bf16 does to torch's output
        difference = np.abs(ours - theirs)[real]
        for name, ours_, limit in (("mean", difference.mean(), 1.5 * rounding.mean()),
                                   ("max", difference.max(), 3 * rounding.max())):
            assert ours_ <= limit, f"{name} |ours - torch| in bf16: {ours_:.4f} > {limit:.4f}"

    compare()
    bias = encoder16.encoder.layers[0].attention.out_proj.bias
    bias[...] = bias[...] + 0.05 * jax.random.normal(jax.random.key(1), bias.shape)
    with pytest.raises(AssertionError):
        compare()


def test_bfloat16_compute_keeps_float32_params(wav2vec2_dir):
    model, folder = wav2vec2_dir
    assert_bfloat16_matches_pytorch(model, folder)


def test_positional_batch_norm_in_training_matches_pytorch(tmp_path):
    """Train mode, no padding (every frame real): batch statistics and the updated running averages as
    torch's BatchNorm1d's; a frozen encoder's batch norm keeps its running averages in train mode."""
    family, config = VARIANTS["hubert-positional-batch-norm"]
    model = torch_model(family, config, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                        feat_proj_dropout=0.0, layerdrop=0.0, mask_time_prob=0.0)  # no SpecAugment either
    model.save_pretrained(tmp_path)
    encoder, _ = encoders.from_pretrained(tmp_path)
    model.train()
    expected = run_torch(model, mask=None).last_hidden_state
    encoder.train()
    got = encoder(jnp.asarray(WAVES)).last_hidden_state
    assert max_diff(got, expected, np.ones(got.shape[:2], bool)) <= 1e-4
    norm, theirs = encoder.encoder.pos_conv_embed.batch_norm, model.encoder.pos_conv_embed.batch_norm
    np.testing.assert_allclose(norm.mean[...], theirs.running_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(norm.var[...], theirs.running_var.numpy(), rtol=1e-4, atol=1e-5)

    frozen = speech_branch(tmp_path, frozen=True)
    frozen.train()
    norm = frozen.speech_encoder.encoder.pos_conv_embed.batch_norm
    before = np.asarray(norm.mean[...])
    frozen(jnp.asarray(WAVES), jnp.asarray(LENGTHS))
    np.testing.assert_array_equal(norm.mean[...], before)


def speech_branch(folder, *, frozen):
    """The model's audio branch over the checkpoint in `folder` (given a feature extractor config)."""
    import ml_collections

    from mer_jax.models.speech_encoder import build_speech_branch

    transformers.Wav2Vec2FeatureExtractor().save_pretrained(folder)
    audio = ml_collections.ConfigDict(dict(encoder=str(folder), layer="weighted"))
    return build_speech_branch(audio, dtype="float32", frozen=frozen, rngs=nnx.Rngs(0))


# --- WavLM ---

@pytest.mark.parametrize("num_buckets, max_distance", [(320, 800), (16, 20), (10, 7)])
def test_wavlm_position_buckets_match_transformers(num_buckets, max_distance):
    from mer_jax.encoders.wavlm import relative_position_buckets
    from transformers.models.wavlm.modeling_wavlm import WavLMAttention

    attention = WavLMAttention(8, 2, num_buckets=num_buckets, max_distance=max_distance)
    offsets = torch.arange(1200)[None] - torch.arange(1200)[:, None]
    np.testing.assert_array_equal(relative_position_buckets(1200, num_buckets, max_distance),
                                  attention._relative_positions_bucket(offsets).numpy())


def test_wavlm_bias_table_only_in_the_first_layer_and_legacy_names(tmp_path):
    model = torch_model(*VARIANTS["wavlm-base-group"])
    model.save_pretrained(tmp_path)
    legacy = {name.replace("parametrizations.weight.original0", "weight_g")
              .replace("parametrizations.weight.original1", "weight_v"): t for name, t in model.state_dict().items()}
    torch.save(legacy, tmp_path / "pytorch_model.bin")
    (tmp_path / "model.safetensors").rename(tmp_path / "weights")
    encoder, _ = encoders.from_pretrained(tmp_path)
    got = encoder(jnp.asarray(WAVES), jnp.asarray(MASK))
    assert max_diff(got.last_hidden_state, run_torch(model).last_hidden_state, np.asarray(got.frame_mask)) <= 1e-4

    (tmp_path / "pytorch_model.bin").unlink()
    tensors = load_file(tmp_path / "weights")
    tensors["encoder.layers.1.attention.rel_attn_embed.weight"] = tensors.pop(
        "encoder.layers.0.attention.rel_attn_embed.weight")
    tensors["encoder.layers.0.attention.gru_rel_pos_const"] = np.ones((1, 2, 1, 1), np.float32)
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(encoders.CheckpointMismatchError) as error:
        encoders.from_pretrained(tmp_path)
    message = str(error.value)
    assert "missing from the checkpoint: encoder.layers.0.attention.rel_attn_embed.weight" in message
    assert "unexpected in the checkpoint: encoder.layers.1.attention.rel_attn_embed.weight" in message
    assert "encoder.layers.0.attention.gru_rel_pos_const: checkpoint (1, 2, 1, 1), encoder expects (1, 4, 1, 1)" in message


def test_wavlm_layerdrop_never_skips_the_first_layer():
    config = config_dict("wavlm-stable-layer-bias", hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                         feat_proj_dropout=0.0, layerdrop=1.0)
    encoder = encoders.from_config(config, rngs=nnx.Rngs(0))
    first, second, third = encoder(jnp.asarray(WAVES), output_hidden_states=True).hidden_states
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(second, third)


def test_wavlm_bfloat16_compute_keeps_float32_params(tmp_path):
    model = torch_model(*VARIANTS["wavlm-base-group"])
    model.save_pretrained(tmp_path)
    assert_bfloat16_matches_pytorch(model, tmp_path)


# --- waveform preprocessing ---

RAW = [np.random.default_rng(1).normal(0.3, 2.0, n).astype(np.float32) for n in (700, 1000, 250)]


@pytest.mark.parametrize("do_normalize", [True, False])
def test_preprocessing_matches_wav2vec2_feature_extractor(do_normalize, tmp_path):
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=do_normalize, padding_value=0.5,
                                                      return_attention_mask=True, sampling_rate=16000)
    extractor.save_pretrained(tmp_path)
    preprocessor = encoders.load_preprocessor(tmp_path)
    assert preprocessor == encoders.WaveformPreprocessor(16000, do_normalize, 0.5)

    expected = extractor(RAW, sampling_rate=16000, padding=True, return_tensors="np")
    got = preprocessor(RAW, sampling_rate=16000)
    np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"])
    np.testing.assert_allclose(got["input_values"], expected["input_values"], atol=1e-5)
    if do_normalize:
        real = got["input_values"][1]
        assert abs(real.mean()) < 1e-5 and abs(real.std() - 1) < 1e-4
    assert preprocessor(RAW, sampling_rate=16000, length=1200)["input_values"].shape == (3, 1200)


def test_wrong_sample_rate_is_refused():
    with pytest.raises(ValueError, match="sampled at 8000 Hz, but this encoder expects 16000 Hz"):
        encoders.WaveformPreprocessor()(RAW, sampling_rate=8000)


def test_missing_or_foreign_preprocessor_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        encoders.load_preprocessor(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(
        {"feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 80}))
    with pytest.raises(ValueError, match="WhisperFeatureExtractor"):
        encoders.load_preprocessor(tmp_path)
