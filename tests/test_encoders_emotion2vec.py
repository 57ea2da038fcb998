"""Flax emotion2vec against FunASR's PyTorch `Emotion2vec` (the oracle), built from small random
`model_conf`s of each variant (post- and pre-norm, ALiBi scales per layer / head / shared, fewer ALiBi
heads than heads, extra tokens, even and odd positional kernels, the positional pre-LayerNorm, both
extractor modes), saved as a FunASR folder (config.yaml + model.pt) and loaded through the factory.
FunASR's `inference` embeds one utterance at a time; padded batches must give the same frames."""

import argparse
import copy
import json
import os

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import nnx

torch = pytest.importorskip("torch")
pytest.importorskip("omegaconf")
emotion2vec_model = pytest.importorskip("funasr.models.emotion2vec.model")

from mer_jax import encoders  # noqa: E402
from mer_jax.encoders.checkpoint import checkpoint_name  # noqa: E402
from mer_jax.encoders.emotion2vec import Emotion2vecConfig, alibi_slopes, feature_encoder_spec  # noqa: E402
from mer_jax.models.speech_encoder import build_speech_branch  # noqa: E402

AUDIO = dict(type="AUDIO", feature_encoder_spec="[(16, 10, 5)] + [(24, 3, 2)] * 2", extractor_mode="layer_norm",
             conv_pos_depth=2, conv_pos_width=12, conv_pos_groups=4, conv_pos_pre_ln=False, prenet_depth=1,
             prenet_layerdrop=0.0, prenet_dropout=0.1, start_drop_path_rate=0.0, end_drop_path_rate=0.0,
             decoder=None, use_alibi_encoder=True, local_grad_mult=1.0, num_extra_tokens=3,
             init_extra_token_zero=False, learned_alibi_scale=True, learned_alibi_scale_per_layer=True,
             learned_alibi_scale_per_head=True, model_depth=2, num_alibi_heads=4, alibi_scale=1.0,
             learned_alibi=False, alibi_max_pos=None, mask_prob=0.5, mask_length=5)
MODEL = dict(embed_dim=32, num_heads=4, mlp_ratio=1.5, depth=2, norm_eps=1e-6, norm_affine=True,
             layer_norm_first=False, encoder_dropout=0.1, attention_dropout=0.1, activation_dropout=0.1,
             post_mlp_drop=0.1, dropout_input=0.0, layerdrop=0.0, start_drop_path_rate=0.0, end_drop_path_rate=0.0,
             end_of_block_targets=False, average_top_k_layers=2, loss_beta=0.0, loss_scale=None, normalize=True)
VARIANTS = {
    # emotion2vec_base's layout: post-norm, ALiBi scales per layer and head, extra tokens; an even kernel.
    "post-norm-alibi-per-layer-head": ({}, {}),
    "pre-norm-no-alibi-pre-ln-odd": (dict(layer_norm_first=True, norm_affine=False),
                                     dict(use_alibi_encoder=False, num_extra_tokens=0, conv_pos_pre_ln=True,
                                          conv_pos_width=10, conv_pos_depth=2, prenet_depth=2)),
    "shared-scale-three-alibi-heads": (dict(num_heads=6, embed_dim=36, depth=3),
                                       dict(learned_alibi_scale_per_layer=False, learned_alibi_scale_per_head=False,
                                            num_alibi_heads=3, model_depth=3, num_extra_tokens=1, prenet_depth=0,
                                            conv_pos_depth=3, conv_pos_width=9, conv_pos_groups=6)),
    "per-head-scale-group-norm": (dict(), dict(extractor_mode="default", learned_alibi_scale_per_layer=False,
                                               num_alibi_heads=2)),
}
LENGTHS = (1600, 1111, 700)


def model_conf(variant):
    top, audio = VARIANTS[variant]
    return {**MODEL, **top, "modalities": {"audio": {**AUDIO, **audio}}}


def reference(variant, seed=0):
    """FunASR's model with every parameter randomised (ALiBi scales partly negative: they are clamped)."""
    torch.manual_seed(seed)
    model = emotion2vec_model.Emotion2vec(model_conf=copy.deepcopy(model_conf(variant)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alibi_scale"):
                p.copy_(torch.rand_like(p) * 2 - 0.5)
            else:
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def save_funasr_folder(model, variant, folder, *, nest="model"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": "Emotion2vec", "model_conf": model_conf(variant)}))
    state = model.state_dict()
    torch.save({nest: state} if nest else state, folder / "model.pt")
    return folder


def waves(seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(n) * rng.uniform(0.1, 2.0) + rng.uniform(-0.3, 0.3)).astype(np.float32)
            for n in LENGTHS]


def run_reference(model, wave):
    """FunASR's `inference` on one waveform: standardise it, extract features; also every main block's output."""
    outputs = []
    hooks = [b.register_forward_hook(lambda m, i, o: outputs.append(o[0])) for b in model.blocks]
    with torch.no_grad():
        source = torch.from_numpy(wave)
        if model.cfg.normalize:
            source = torch.nn.functional.layer_norm(source, source.shape)
        x = model.extract_features(source.view(1, -1), padding_mask=None)["x"][0].numpy()
    for hook in hooks:
        hook.remove()
    extra = model.modality_encoders["AUDIO"].modality_cfg.num_extra_tokens
    return x, [o[0, extra:].numpy() for o in outputs]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_funasr_one_utterance_at_a_time_in_padded_batches(variant, tmp_path):
    model = reference(variant)
    encoder, config = encoders.from_pretrained(save_funasr_folder(model, variant, tmp_path / "e2v"))
    assert isinstance(config, Emotion2vecConfig)
    preprocess = encoders.load_preprocessor(tmp_path / "e2v")
    padded = variant != "per-head-scale-group-norm"  # a GroupNorm over time sees the padding (as wav2vec2-base)
    batches = [preprocess(waves(), sampling_rate=16000)] if padded else [preprocess([w], sampling_rate=16000)
                                                                         for w in waves()]
    ours = [encoder(jnp.asarray(b["input_values"]), jnp.asarray(b["attention_mask"]), output_hidden_states=True)
            for b in batches]
    for i, wave in enumerate(waves()):
        out, row = (ours[0], i) if padded else (ours[i], 0)
        expected, blocks = run_reference(model, wave)
        frames = int(np.asarray(out.frame_mask[row]).sum())
        assert frames == expected.shape[0] == config.frame_lengths(len(wave))
        np.testing.assert_allclose(np.asarray(out.last_hidden_state[row, :frames]), expected, atol=1e-4, rtol=1e-4)
        assert len(out.hidden_states) == config.num_hidden_layers + 1
        for state, block in zip(out.hidden_states[1:], blocks, strict=True):
            np.testing.assert_allclose(np.asarray(state[row, :frames]), block, atol=1e-4, rtol=1e-4)


def test_utterance_vector_of_the_speech_branch_is_funasrs(tmp_path):
    """What LPGNet's `speech_frozen` features average (the last layer over real frames) is FunASR's
    utterance-level embedding, the mean of `extract_features`' frames."""
    model = reference("post-norm-alibi-per-layer-head", seed=3)
    folder = save_funasr_folder(model, "post-norm-alibi-per-layer-head", tmp_path / "e2v", nest="")

    class Audio:
        encoder, layer = str(folder), "-1"

    branch = build_speech_branch(Audio, dtype="float32", frozen=True, rngs=nnx.Rngs(0))
    raw = waves(seed=5)
    padded = np.zeros((len(raw), max(LENGTHS)), np.float32)
    for i, w in enumerate(raw):
        padded[i, :len(w)] = w
    states, mask = branch(jnp.asarray(padded), jnp.asarray([len(w) for w in raw]))
    vectors = (np.asarray(states) * np.asarray(mask)[..., None]).sum(1) / np.asarray(mask).sum(1, keepdims=True)
    expected = np.stack([run_reference(model, w)[0].mean(0) for w in raw])
    np.testing.assert_allclose(vectors, expected, atol=1e-4, rtol=1e-4)


def test_checkpoint_heads_are_ignored_and_mismatches_named(tmp_path):
    model = reference("post-norm-alibi-per-layer-head")
    state = model.state_dict()
    state["proj.weight"] = torch.zeros(9, 32)  # emotion2vec_plus' classifier head
    state["modality_encoders.AUDIO.decoder.proj.weight"] = torch.zeros(32, 32)
    folder = save_funasr_folder(model, "post-norm-alibi-per-layer-head", tmp_path / "heads")
    torch.save({"model": state}, folder / "model.pt")
    encoders.from_pretrained(folder)

    del state["blocks.1.mlp.fc2.bias"]
    state["blocks.0.norm1.weight"] = torch.ones(7)
    state["blocks.9.attn.qkv.weight"] = torch.ones(3)
    torch.save(state, folder / "model.pt")
    with pytest.raises(encoders.CheckpointMismatchError) as error:
        encoders.from_pretrained(folder)
    message = str(error.value)
    assert "blocks.1.mlp.fc2.bias" in message and "blocks.9.attn.qkv.weight" in message
    assert "blocks.0.norm1.weight: checkpoint (7,)" in message


def test_old_alibi_scale_layout_and_module_prefix_load(tmp_path):
    model = reference("post-norm-alibi-per-layer-head")
    folder = save_funasr_folder(model, "post-norm-alibi-per-layer-head", tmp_path / "old")
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.modality_encoders.AUDIO.alibi_scale"] = state["module.modality_encoders.AUDIO.alibi_scale"][0]
    torch.save({"state_dict": state}, folder / "model.pt")
    with pytest.raises(encoders.CheckpointMismatchError, match="alibi_scale"):  # 4-D and 3 layers: wrong
        encoders.from_pretrained(folder)
    single = reference("shared-scale-three-alibi-heads")
    folder = save_funasr_folder(single, "shared-scale-three-alibi-heads", tmp_path / "single")
    state = {f"module.{k}": v for k, v in single.state_dict().items()}
    state["module.modality_encoders.AUDIO.alibi_scale"] = state["module.modality_encoders.AUDIO.alibi_scale"][0]
    torch.save(state, folder / "model.pt")
    encoder, _ = encoders.from_pretrained(folder)
    np.testing.assert_allclose(np.asarray(encoder.audio_encoder.alibi_scale[...]),
                               single.modality_encoders["AUDIO"].alibi_scale.detach().numpy(), rtol=0)


def test_pickled_training_checkpoints_and_foreign_configs_are_refused(tmp_path):
    model = reference("post-norm-alibi-per-layer-head")
    folder = save_funasr_folder(model, "post-norm-alibi-per-layer-head", tmp_path / "pickled")
    # a fairseq training checkpoint stores its arguments (a Namespace, or a config object) beside the weights
    torch.save({"model": model.state_dict(), "args": argparse.Namespace(arch="data2vec_multi")}, folder / "model.pt")
    with pytest.raises(ValueError, match="model.pt holds Python objects"):
        encoders.from_pretrained(folder)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": "Paraformer", "model_conf": {}}))
    with pytest.raises(ValueError, match="config.yaml: model is 'Paraformer'"):
        encoders.load_preprocessor(folder)
    conf = model_conf("post-norm-alibi-per-layer-head")
    del conf["modalities"]["audio"]["conv_pos_width"]
    with pytest.raises(ValueError, match="modalities.audio.conv_pos_width is missing"):
        Emotion2vecConfig.from_model_conf(conf)
    conf = model_conf("post-norm-alibi-per-layer-head")
    conf["modalities"]["audio"]["learned_alibi"] = True
    with pytest.raises(ValueError, match="learned_alibi"):
        Emotion2vecConfig.from_model_conf(conf)


@pytest.mark.parametrize("spec, layers", [
    ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]",
     [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2),
    ("[(8, 4, 2)]", [(8, 4, 2)]),
])
def test_feature_encoder_spec(spec, layers):
    assert feature_encoder_spec(spec) == layers


@pytest.mark.parametrize("spec", ["__import__('os')", "[(1, 2)]", "[]", "[(1, 2, 3)] - [(1, 2, 3)]"])
def test_feature_encoder_spec_refuses_anything_else(spec):
    with pytest.raises(ValueError, match="feature_encoder_spec"):
        feature_encoder_spec(spec)


@pytest.mark.parametrize("heads", [1, 3, 4, 6, 12])
def test_alibi_slopes_match_funasr(heads):
    from funasr.models.emotion2vec.base import get_alibi  # noqa: PLC0415

    np.testing.assert_allclose(get_alibi(2, heads)[:, 0, 1].numpy(), -np.asarray(alibi_slopes(heads)), rtol=1e-6)


def test_dropouts_follow_the_config_and_train_eval(tmp_path):
    folder = save_funasr_folder(reference("post-norm-alibi-per-layer-head"), "post-norm-alibi-per-layer-head",
                                tmp_path / "e2v")
    encoder, _ = encoders.from_pretrained(folder)
    batch = encoders.load_preprocessor(folder)(waves()[:1], sampling_rate=16000)
    x = jnp.asarray(batch["input_values"])
    np.testing.assert_array_equal(encoder(x).last_hidden_state, encoder(x).last_hidden_state)
    encoder.train()
    assert not np.allclose(encoder(x).last_hidden_state, encoder(x).last_hidden_state)
    frozen, _ = encoders.from_pretrained(folder, dropout=False)
    assert frozen.config.post_mlp_dropout == frozen.config.prenet_dropout == frozen.config.hidden_dropout == 0.0
    frozen.train()
    encoder.eval()
    np.testing.assert_allclose(frozen(x).last_hidden_state, encoder(x).last_hidden_state, atol=1e-5)


@pytest.mark.parametrize("learned_scale, grad_mult", [(True, 1.0), (False, 0.5)])
def test_gradients_match_funasr(learned_scale, grad_mult, tmp_path):
    """Fine-tuning: the gradients of every parameter equal PyTorch's, with the conv feature extractor's
    scaled by `local_grad_mult` and the ALiBi scales fixed unless `learned_alibi_scale`.

    Each Flax parameter is paired with the PyTorch parameter whose tensor the loader copies into it (its
    checkpoint name; kernels transposed), and every PyTorch parameter must be paired. Tolerance per
    parameter: 1e-4 of that gradient's largest entry (float32 sums in another order measure at most 1.5e-6
    of it); a gradient PyTorch does not compute (the fixed ALiBi scales) must be exactly zero here."""
    variant = "post-norm-alibi-per-layer-head"
    VARIANTS[f"{variant}-grad"] = ({}, dict(learned_alibi_scale=learned_scale, local_grad_mult=grad_mult))
    try:
        model = reference(f"{variant}-grad")
        encoder, _ = encoders.from_pretrained(save_funasr_folder(model, f"{variant}-grad", tmp_path / "e2v"))
    finally:
        del VARIANTS[f"{variant}-grad"]
    wave = encoders.load_preprocessor(tmp_path / "e2v")(waves()[1:2], sampling_rate=16000)["input_values"]
    weights = np.random.default_rng(0).normal(size=(1, encoder.config.frame_lengths(wave.shape[1]), 32))

    graph, params, rest = nnx.split(encoder, nnx.Param, ...)

    def loss(params):
        out = nnx.merge(graph, params, rest)(jnp.asarray(wave)).last_hidden_state
        return jnp.sum(out * weights)

    ours = {checkpoint_name(path, encoder.checkpoint_rules): (path, np.asarray(v[...]))
            for path, v in nnx.to_flat_state(jax.grad(loss)(params))}
    out = model.extract_features(torch.from_numpy(wave), padding_mask=None)["x"]
    (out * torch.from_numpy(weights).float()).sum().backward()
    theirs = dict(model.named_parameters())
    assert set(ours) == set(theirs), (sorted(set(ours) ^ set(theirs)))
    for name, (path, got) in ours.items():
        grad = theirs[name].grad
        expected = np.zeros_like(got) if grad is None else grad.numpy()
        if path[-1] == "kernel":  # (out, in) -> (in, out); (out, in, k) -> (k, in, out)
            expected = np.transpose(expected)
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max(), err_msg=name)
    assert len(ours) == 57  # every parameter of this variant: convolutions, norms, blocks, ALiBi scales, tokens
    assert (theirs["modality_encoders.AUDIO.alibi_scale"].grad is None) == (not learned_scale)
    conv = ours["modality_encoders.AUDIO.local_encoder.conv_layers.1.0.weight"][1]
    assert np.abs(conv).max() > 1e-3  # the scaled feature extractor gets a gradient to compare


def test_files_named_by_configuration_json_and_missing_weights(tmp_path):
    """A ModelScope / hub folder lists its files in configuration.json (FunASR reads `config` and
    `init_param` from it); `save_configs` keeps what an exported model needs to rebuild the encoder."""
    variant = "shared-scale-three-alibi-heads"
    model = reference(variant)
    folder = save_funasr_folder(model, variant, tmp_path / "hub")
    (folder / "config.yaml").rename(folder / "emotion2vec.yaml")
    (folder / "model.pt").rename(folder / "emotion2vec_base.pt")
    (folder / "configuration.json").write_text(json.dumps(
        {"framework": "pytorch", "task": "emotion-recognition", "model": {"type": "emotion2vec"},
         "file_path_metas": {"init_param": "emotion2vec_base.pt", "config": "emotion2vec.yaml"}}))
    encoder, config = encoders.from_pretrained(folder)
    wave = waves()[2]
    batch = encoders.load_preprocessor(folder)([wave], sampling_rate=16000)
    np.testing.assert_allclose(np.asarray(encoder(jnp.asarray(batch["input_values"])).last_hidden_state[0]),
                               run_reference(model, wave)[0], atol=1e-4, rtol=1e-4)

    encoders.save_configs(folder, tmp_path / "exported")
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == ["config.yaml"]
    assert encoders.read_config(tmp_path / "exported") == config
    with pytest.raises(FileNotFoundError, match="has no model.pt"):
        encoders.from_pretrained(tmp_path / "exported")
