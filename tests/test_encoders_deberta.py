"""Flax DeBERTa-v2/v3 against transformers' PyTorch DebertaV2Model (the oracle).

No pretrained DeBERTa weights are reachable here, so small random configs covering the v3 layout
(log buckets, shared keys, normalised relative embeddings) and the v2 layout (clipped distances,
separate position projections, convolution branch, embedding projection, segments, absolute
positions) are saved with `save_pretrained` and loaded through `from_pretrained`. Every weight is
perturbed away from its initialisation so that LayerNorms, biases and relative terms all matter.
Sequences are longer than the bucket range (and than max_relative_positions) so the log buckets and
the clipping are exercised.
"""

import os

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers.models.deberta_v2 import modeling_deberta_v2 as reference  # noqa: E402

from mer_jax import encoders  # noqa: E402
from mer_jax.encoders.checkpoint import checkpoint_name  # noqa: E402
from mer_jax.encoders.deberta import log_bucket_position, relative_rows, skew  # noqa: E402

TINY = dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)

CONFIGS = {
    # deberta-v3: 256 log buckets up to 512, shared keys, LayerNorm on the relative table, no absolute positions.
    "v3": (dict(TINY, relative_attention=True, position_buckets=256, max_relative_positions=-1,
                pos_att_type="p2c|c2p", share_att_key=True, norm_rel_ebd="layer_norm",
                position_biased_input=False, type_vocab_size=0, max_position_embeddings=512), 600),
    # deberta-v2 without buckets: distances clipped at 64, separate pos projections, conv branch,
    # a 24-wide embedding projected to 32, segment and absolute position embeddings.
    "v2": (dict(TINY, relative_attention=True, position_buckets=-1, max_relative_positions=64,
                pos_att_type=["p2c", "c2p"], share_att_key=False, conv_kernel_size=3, conv_groups=2,
                position_biased_input=True, type_vocab_size=2, embedding_size=24,
                max_position_embeddings=256), 150),
    # deberta-v3 on a sequence shorter than the bucket range: every distance has its own row.
    "v3-short": (dict(TINY, relative_attention=True, position_buckets=256, max_relative_positions=-1,
                      pos_att_type="p2c|c2p", share_att_key=True, norm_rel_ebd="layer_norm",
                      position_biased_input=False, type_vocab_size=0, max_position_embeddings=512), 24),
    # c2p only with small buckets, tanh-approximate GELU.
    "c2p-only": (dict(TINY, relative_attention=True, position_buckets=16, max_relative_positions=40,
                      pos_att_type="c2p", share_att_key=False, norm_rel_ebd="layer_norm",
                      hidden_act="gelu_new", position_biased_input=False,
                      type_vocab_size=0), 70),
    # no relative attention; pos_att_type still changes the scale, as in the reference.
    "absolute": (dict(TINY, relative_attention=False, pos_att_type="p2c", position_biased_input=True,
                      type_vocab_size=0, max_position_embeddings=64), 40),
}


def save_random_deberta(config_kwargs, folder):
    torch.manual_seed(0)
    model = transformers.DebertaV2Model(transformers.DebertaV2Config(**config_kwargs)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder)
    return model


def padded_batch(length, vocab, segments):
    rng = np.random.default_rng(1)
    lengths = [length, length // 2, 7]
    ids = rng.integers(1, vocab, (len(lengths), length))
    mask = (np.arange(length)[None] < np.array(lengths)[:, None]).astype(np.int64)
    ids = np.where(mask, ids, 0)
    types = rng.integers(0, segments, ids.shape) * mask if segments else None
    return ids, mask, types


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_pytorch_on_padded_batch(name, tmp_path):
    config_kwargs, length = CONFIGS[name]
    torch_model = save_random_deberta(config_kwargs, tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    encoder, hf_config = encoders.from_pretrained(tmp_path)
    assert hf_config.model_type == "deberta-v2"
    assert encoder.hidden_size == config_kwargs["hidden_size"]

    ids, mask, types = padded_batch(length, config_kwargs["vocab_size"], config_kwargs.get("type_vocab_size"))
    with torch.no_grad():
        expected = torch_model(torch.tensor(ids), torch.tensor(mask),
                               token_type_ids=None if types is None else torch.tensor(types),
                               output_hidden_states=True)
    got = jax.jit(lambda i, m, t: encoder(i, m, t, output_hidden_states=True))(
        jnp.asarray(ids), jnp.asarray(mask), None if types is None else jnp.asarray(types))

    real = mask.astype(bool)
    diff = np.abs(np.asarray(got.last_hidden_state) - expected.last_hidden_state.numpy())[real].max()
    assert diff <= 1e-4, f"{name}: max |diff| {diff}"
    assert len(got.hidden_states) == len(expected.hidden_states) == config_kwargs["num_hidden_layers"] + 1
    for ours, theirs in zip(got.hidden_states, expected.hidden_states):
        assert np.abs(np.asarray(ours) - theirs.numpy())[real].max() <= 1e-4
    assert got.pooled is None


@pytest.mark.parametrize("name", ["v3-short", "v2", "c2p-only"])
def test_gradients_match_pytorch(name, tmp_path):
    """Fine-tuning: every parameter's gradient equals PyTorch's, the relative table's included (the
    relative logits are laid out without a gather, so their gradient is computed differently)."""
    config_kwargs, length = CONFIGS[name]
    torch_model = save_random_deberta(config_kwargs, tmp_path)
    encoder, _ = encoders.from_pretrained(tmp_path)
    ids, mask, types = padded_batch(length, config_kwargs["vocab_size"], config_kwargs.get("type_vocab_size"))
    weights = np.random.default_rng(2).normal(size=(*ids.shape, config_kwargs["hidden_size"])) * mask[..., None]
    graph, params, rest = nnx.split(encoder, nnx.Param, ...)

    def loss(params):
        out = nnx.merge(graph, params, rest)(jnp.asarray(ids), jnp.asarray(mask),
                                              None if types is None else jnp.asarray(types)).last_hidden_state
        return jnp.sum(out * weights)

    ours = nnx.to_flat_state(jax.jit(jax.grad(loss))(params))
    out = torch_model(torch.tensor(ids), torch.tensor(mask),
                      token_type_ids=None if types is None else torch.tensor(types)).last_hidden_state
    (out * torch.from_numpy(weights).float()).sum().backward()
    theirs = {n.removeprefix("deberta."): p.grad for n, p in torch_model.named_parameters()}
    for path, grad in ours:
        name_ = checkpoint_name(path, encoder.checkpoint_rules)
        expected = np.zeros(grad.shape) if theirs[name_] is None else theirs[name_].numpy()
        if path[-1] == "kernel":
            expected = expected.T
        np.testing.assert_allclose(np.asarray(grad[...]), expected, atol=2e-4, rtol=1e-3, err_msg=name_)


def test_skew_lays_out_distances_per_key():
    """skew's out[i, j] is row i's score for distance i - j, scores given for distances L-1 .. -(L-1);
    relative_rows lists the table row of each distance, consecutive below the log range."""
    for length in (1, 2, 5):
        per_distance = np.random.default_rng(length).normal(size=(3, length, 2 * length - 1)).astype(np.float32)
        expected = np.empty((3, length, length), np.float32)
        for i in range(length):
            for j in range(length):
                expected[:, i, j] = per_distance[:, i, (length - 1) - (i - j)]
        np.testing.assert_array_equal(np.asarray(skew(jnp.asarray(per_distance))), expected)
    np.testing.assert_array_equal(relative_rows(4, 256, 512, 256), np.arange(253, 260))
    np.testing.assert_array_equal(relative_rows(4, -1, 2, 2), [0, 0, 1, 2, 3, 3, 3])


def test_log_buckets_match_reference():
    relative = np.arange(-1500, 1501)[None, :]
    for buckets, max_position in [(256, 512), (256, 1024), (16, 40), (64, 129)]:
        ours = log_bucket_position(relative, buckets, max_position)
        theirs = reference.make_log_bucket_position(torch.tensor(relative), buckets, max_position).numpy()
        np.testing.assert_array_equal(ours, theirs, err_msg=f"buckets={buckets} max_position={max_position}")


def test_dropout_follows_train_eval_and_reseed(tmp_path):
    config_kwargs, length = CONFIGS["v2"]
    save_random_deberta(config_kwargs, tmp_path)
    encoder, _ = encoders.from_pretrained(tmp_path, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2)
    ids, mask, types = padded_batch(40, config_kwargs["vocab_size"], 2)
    run = lambda: np.asarray(encoder(jnp.asarray(ids), jnp.asarray(mask), jnp.asarray(types)).last_hidden_state)
    evaluated = run()
    np.testing.assert_array_equal(evaluated, run())
    encoder.train()
    trained = []
    for seed in (3, 3, 4):
        nnx.reseed(encoder, dropout=seed)
        trained.append(run())
    np.testing.assert_array_equal(trained[0], trained[1])
    assert not np.allclose(trained[0], trained[2])
    assert not np.allclose(trained[0], evaluated)
    encoder.eval()
    np.testing.assert_array_equal(evaluated, run())
