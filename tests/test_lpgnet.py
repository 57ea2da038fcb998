"""LPGNet (papers/lpgnet.md, Section 3.3-3.6): parity with an independent PyTorch reference, each
equation by hand, padding invariance, a planted context signal, and the self-distillation loss."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from mer_jax.layers.gated_fusion import ModalityGate, UnimodalGate
from mer_jax.layers.batch_norm import MaskedBatchNorm
from mer_jax.layers.lpia import ResidualEnhancement, attention_mask, masked_attention
from mer_jax.models.lpgnet import DEFAULTS, LPGNet, build, check
from lpgnet_reference import LPGNetReference, load_flax, self_distillation_loss

TEXT_DIM, AUDIO_DIM, HIDDEN, CLASSES = 12, 10, 16, 4


def random_batch(seed, lengths, utterances):
    rng = np.random.default_rng(seed)
    batch = len(lengths)
    return {
        "text": rng.normal(size=(batch, utterances, TEXT_DIM)).astype(np.float32),
        "audio": rng.normal(size=(batch, utterances, AUDIO_DIM)).astype(np.float32),
        "utterance_mask": (np.arange(utterances)[None] < np.array(lengths)[:, None]).astype(np.float32),
    }


# These tests are dominated by XLA compile time; unoptimised compiles are several times faster.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.partial(jax.jit, static_argnums=0, compiler_options=FAST_COMPILE)
def _forward(graph, state, batch):
    model = nnx.merge(graph, state)
    return model(batch), nnx.state(model)


def run(model, batch):
    """The model's outputs as numpy arrays; its batch statistics and RNG counters are updated in place."""
    graph, state = nnx.split(model)
    outputs, state = _forward(graph, state, {k: jnp.asarray(v) for k, v in batch.items()})
    nnx.update(model, state)
    return {k: np.asarray(v) for k, v in outputs.items()}


def make_model(seed=0, **switches):
    return LPGNet(num_classes=CLASSES, text_dim=TEXT_DIM, audio_dim=AUDIO_DIM, hidden=HIDDEN, dropout=0.0,
                  rngs=nnx.Rngs(params=seed, dropout=seed), **switches)


VARIANTS = {
    "full": {}, "text": {"modalities": "text"}, "audio": {"modalities": "audio"},
    "no_inter": {"inter_attention": False}, "no_intra": {"intra_attention": False},
    "no_ffn": {"position_ffn": False}, "no_gates": {"gated_fusion": False}, "no_context": {"context": False},
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_pytorch_reference_train_and_eval(variant):
    switches = VARIANTS[variant]
    model = make_model(**switches)
    reference = load_flax(LPGNetReference(CLASSES, TEXT_DIM, AUDIO_DIM, HIDDEN, **switches), model)
    batch = random_batch(1, lengths=[6, 3, 1, 0, 4], utterances=6)  # an all-padding dialogue included
    real = batch["utterance_mask"].astype(bool)
    torch_batch = [torch.tensor(batch[k]) for k in ("text", "audio", "utterance_mask")]

    model.train()
    reference.train()
    ours = run(model, batch)
    with torch.no_grad():
        theirs = reference(*torch_batch)
    assert set(ours) == set(theirs) == ({"logits"} if "modalities" in switches
                                        else {"logits", "text_logits", "audio_logits"})
    for name in ours:
        np.testing.assert_allclose(ours[name][real], theirs[name].numpy()[real], atol=1e-5)
    for p, path in reference.paths.items():  # running statistics moved the same way
        norm = model.paths[p].enhancement.compression.norm
        np.testing.assert_allclose(norm.mean[...], path.bn.running_mean.numpy(), atol=1e-5)
        np.testing.assert_allclose(norm.var[...], path.bn.running_var.numpy(), atol=1e-5)

    model.eval()
    reference.eval()
    ours = run(model, batch)
    with torch.no_grad():
        theirs = reference(*torch_batch)
    for name in ours:
        np.testing.assert_allclose(ours[name][real], theirs[name].numpy()[real], atol=1e-5)



def test_dropout_follows_train_eval_and_the_reseeded_stream():
    model = LPGNet(num_classes=CLASSES, text_dim=TEXT_DIM, audio_dim=AUDIO_DIM, hidden=HIDDEN, dropout=0.5,
                   rngs=nnx.Rngs(params=0, dropout=0))
    batch = random_batch(1, lengths=[6, 3, 1, 0, 4], utterances=6)
    model.train()
    nnx.reseed(model, dropout=1)
    first = run(model, batch)["logits"]
    nnx.reseed(model, dropout=2)
    second = run(model, batch)["logits"]
    nnx.reseed(model, dropout=1)
    np.testing.assert_array_equal(run(model, batch)["logits"], first)
    assert np.abs(first - second).max() > 1e-3
    model.eval()
    np.testing.assert_array_equal(run(model, batch)["logits"], run(model, batch)["logits"])

# --- Eq. 3-5: masked attention ---------------------------------------------------------------------

def test_attention_gives_a_padded_key_zero_weight():
    x = jnp.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    real = jnp.array([[1.0, 1.0, 0.0]])
    mask = attention_mask(real, real)
    np.testing.assert_array_equal(mask[0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    out, weights = masked_attention(x, x, x, mask)
    e = np.exp(1 / np.sqrt(2))  # q0.k0 / sqrt(d); q0.k1 = 0
    np.testing.assert_allclose(weights[0, 0], [e / (e + 1), 1 / (e + 1), 0.0], rtol=1e-6)
    assert weights[0, 0, 2] == 0.0 and weights[0, 1, 2] == 0.0
    np.testing.assert_allclose(weights[0, 2], [1 / 3] * 3, rtol=1e-6)  # a padded query: uniform, finite
    np.testing.assert_allclose(out[0, 0], [e / (e + 1), 1 / (e + 1)], rtol=1e-6)


def test_identity_mask_attends_only_to_self():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 3)), jnp.float32)
    identity = jnp.broadcast_to(jnp.eye(4, dtype=bool), (2, 4, 4))
    np.testing.assert_allclose(masked_attention(x, x, x, identity)[0], x, atol=1e-7)


def test_no_context_model_sees_each_utterance_alone():
    model = make_model(context=False)
    batch = random_batch(2, lengths=[6, 3, 1, 0, 4], utterances=6)
    model.train()
    run(model, batch)  # non-trivial running statistics
    model.eval()
    together = run(model, batch)
    for b, u in [(0, 0), (0, 5), (1, 2), (4, 3)]:
        alone = run(model, {k: v[b:b + 1, u:u + 1] for k, v in batch.items()})
        for name in together:
            np.testing.assert_allclose(together[name][b, u], alone[name][0, 0], atol=1e-6)
    # ... while with context, an utterance's logits depend on the other utterances of its dialogue.
    contextual = make_model()
    contextual.eval()
    alone = run(contextual, {k: v[:1, :1] for k, v in batch.items()})
    assert np.abs(run(contextual, batch)["logits"][0, 0] - alone["logits"][0, 0]).max() > 1e-3


# --- Eq. 6-8: masked batch norm, global compression, residual ---------------------------------------

def test_masked_batch_norm_by_hand_train_then_eval():
    norm = MaskedBatchNorm(2)
    x = jnp.array([[1.0, 2.0], [3.0, 2.0], [100.0, -100.0], [5.0, 8.0]])
    mask = jnp.array([True, True, False, True])
    out = norm(x, mask)
    mean, biased_var = np.array([3.0, 4.0]), np.array([8 / 3, 8.0])  # row 2 (padding) excluded
    np.testing.assert_allclose(np.asarray(out)[[0, 1, 3]], (np.array(x)[[0, 1, 3]] - mean) / np.sqrt(biased_var + 1e-5),
                               rtol=1e-5)
    np.testing.assert_allclose(norm.mean[...], [0.3, 0.4], rtol=1e-6)  # 0.9 * 0 + 0.1 * mean
    np.testing.assert_allclose(norm.var[...], [1.3, 2.1], rtol=1e-6)  # 0.9 * 1 + 0.1 * unbiased (4, 12)

    norm(x, jnp.zeros(4, bool))  # a batch of padding moves nothing
    np.testing.assert_allclose(norm.mean[...], [0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(norm.var[...], [1.3, 2.1], rtol=1e-6)

    norm.eval()
    np.testing.assert_allclose(norm(x, mask), (np.array(x) - [0.3, 0.4]) / np.sqrt(np.array([1.3, 2.1]) + 1e-5),
                               rtol=1e-5)
    np.testing.assert_allclose(norm.mean[...], [0.3, 0.4], rtol=1e-6)  # eval mode updates nothing


def test_global_compression_is_broadcast_over_utterances():
    block = ResidualEnhancement(2, d_ff=8, dropout=0.0, position_ffn=False, rngs=nnx.Rngs(0))
    block.compression.conv.kernel[...] = jnp.eye(2)
    block.eval()  # running statistics 0 / 1: batch norm is x / sqrt(1 + eps)
    query = jnp.array([[[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]]])
    attended = jnp.array([[[1.0, -2.0], [3.0, -4.0], [100.0, 100.0]]])
    utterance_mask = jnp.array([[1.0, 1.0, 0.0]])
    compressed = np.array([2.0, -3.0 * 0.01]) / np.sqrt(1 + 1e-5)  # LeakyReLU(mean of the real rows)
    np.testing.assert_allclose(block(query, attended, utterance_mask)[0, :2], np.array(query)[0, :2] + compressed,
                               rtol=1e-6)

    with_ffn = ResidualEnhancement(2, d_ff=8, dropout=0.0, position_ffn=True, rngs=nnx.Rngs(0))
    with_ffn.eval()
    added = np.asarray(with_ffn(query, attended, utterance_mask) - query)[0]
    np.testing.assert_allclose(added[0], added[1], rtol=1e-6)  # A_conv + FFN(A_conv): one vector per dialogue


# --- Eq. 9, 13-14: gates ---------------------------------------------------------------------------

def test_unimodal_gate_by_hand():
    gate = UnimodalGate(2, rngs=nnx.Rngs(0))
    gate.gate.kernel[...] = jnp.array([[np.log(3.0), 0.0], [0.0, 0.0]])
    # W_g h = (ln 3, 0): sigmoid -> (3/4, 1/2)
    np.testing.assert_allclose(gate(jnp.array([1.0, 4.0])), [0.75, 2.0], rtol=1e-6)


def test_modality_gate_softmax_over_the_two_modalities():
    gate = ModalityGate(2, rngs=nnx.Rngs(0))
    gate.score.kernel[...] = jnp.array([[1.0], [0.0]])
    text, audio = jnp.array([[[np.log(3.0), 7.0]]]), jnp.array([[[0.0, -7.0]]])
    np.testing.assert_allclose(gate.weights(text, audio)[0, 0], [0.75, 0.25], rtol=1e-6)
    np.testing.assert_allclose(gate(text, audio)[0, 0], 0.75 * text[0, 0] + 0.25 * audio[0, 0], rtol=1e-6)

    rng = np.random.default_rng(0)
    text, audio = (jnp.asarray(rng.normal(size=(3, 5, 2)), jnp.float32) for _ in range(2))
    weights = gate.weights(text, audio)
    assert weights.shape == (3, 5, 2) and (weights > 0).all()
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)


# --- padding invariance ------------------------------------------------------------------------------

@pytest.mark.parametrize("context", [True, False])
def test_padding_changes_no_real_logits(context):
    batch = random_batch(3, lengths=[6, 2, 3, 0, 4], utterances=6)
    rng = np.random.default_rng(4)
    noisy = {  # 3 more padded utterances, one more all-padding dialogue, and noise wherever there is padding
        "utterance_mask": np.pad(batch["utterance_mask"], ((0, 1), (0, 3))),
        **{k: rng.normal(scale=50.0, size=(6, 9, batch[k].shape[-1])).astype(np.float32) for k in ("text", "audio")},
    }
    for k in ("text", "audio"):
        noisy[k][:5, :6][batch["utterance_mask"] > 0] = batch[k][batch["utterance_mask"] > 0]
    real = batch["utterance_mask"] > 0

    clean_model, noisy_model = make_model(context=context), make_model(context=context)
    clean_model.train()  # train mode: the same batch statistics, the same running-average update
    noisy_model.train()
    clean_out, noisy_out = run(clean_model, batch), run(noisy_model, noisy)
    for name in clean_out:
        np.testing.assert_allclose(noisy_out[name][:5, :6][real], clean_out[name][real], atol=1e-5)
        assert np.isfinite(noisy_out[name]).all()
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
                 nnx.state(clean_model, nnx.BatchStat), nnx.state(noisy_model, nnx.BatchStat))

    clean_model.eval()
    clean_out, noisy_out = run(clean_model, batch), run(clean_model, noisy)
    for name in clean_out:
        np.testing.assert_allclose(noisy_out[name][:5, :6][real], clean_out[name][real], atol=1e-5)
        assert np.isfinite(noisy_out[name]).all()


# --- learning: a planted signal only context can read ------------------------------------------------

def cue_dialogues(seed, dialogues=16, utterances=6):
    """Every utterance's label is its dialogue's class, which only one utterance of the dialogue shows
    (text feature 0 = +-1); all other inputs are 0. Without context, the other utterances are guesses."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, utterances + 1, dialogues)
    mask = (np.arange(utterances)[None] < lengths[:, None]).astype(np.float32)
    label = np.arange(dialogues) % 2
    text = np.zeros((dialogues, utterances, TEXT_DIM), np.float32)
    text[np.arange(dialogues), rng.integers(0, lengths), 0] = 2.0 * label - 1.0
    return {"text": jnp.asarray(text), "audio": jnp.zeros((dialogues, utterances, AUDIO_DIM)),
            "utterance_mask": jnp.asarray(mask), "label": jnp.asarray(np.repeat(label[:, None], utterances, 1))}


def adam_losses(context, batch, steps=20):
    model = make_model(context=context)
    model.train()
    graph, params, rest = nnx.split(model, nnx.Param, ...)
    adam = optax.adam(1e-2)

    @functools.partial(jax.jit, compiler_options=FAST_COMPILE)
    def step(params, rest, opt_state):
        def loss_fn(params, rest):
            model = nnx.merge(graph, params, jax.tree.map(jnp.copy, rest))  # fresh variables at this trace level
            losses = optax.softmax_cross_entropy_with_integer_labels(model(batch)["logits"], batch["label"])
            loss = (losses * batch["utterance_mask"]).sum() / batch["utterance_mask"].sum()
            return loss, nnx.state(model, nnx.Not(nnx.Param))

        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest)
        updates, opt_state = adam.update(grads, opt_state)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    opt_state, losses = adam.init(params), []
    for _ in range(steps):
        params, rest, opt_state, loss = step(params, rest, opt_state)
        losses.append(float(loss))
    nnx.update(model, params, rest)
    return model, losses


def test_adam_learns_a_signal_that_needs_context():
    batch = cue_dialogues(0)
    model, with_context = adam_losses(True, batch)
    _, without_context = adam_losses(False, batch)
    # Without context, the non-cue utterances (all-zero inputs) get one prediction: their loss is at
    # least the entropy of their labels.
    real = np.asarray(batch["utterance_mask"]) > 0
    non_cue = real & (np.asarray(batch["text"])[..., 0] == 0)
    share_of_ones = np.asarray(batch["label"])[non_cue].mean()
    entropy = -(share_of_ones * np.log(share_of_ones) + (1 - share_of_ones) * np.log(1 - share_of_ones))
    floor = non_cue.sum() / real.sum() * entropy
    assert with_context[-1] < 0.05 < 0.5 * with_context[0]
    assert min(without_context) > floor - 1e-4 > 0.3
    held_out = cue_dialogues(1)
    model.eval()
    predictions = run(model, held_out)["logits"].argmax(-1)
    real = np.asarray(held_out["utterance_mask"]) > 0
    assert (predictions == np.asarray(held_out["label"]))[real].mean() > 0.95  # and it generalises


# --- the self-distillation loss (Eq. 17-22) against PyTorch ------------------------------------------

@pytest.mark.parametrize("temperature, kl_weight", [(1.0, 0.3), (2.5, 1.0)])
def test_self_distillation_matches_pytorch(temperature, kl_weight):
    objectives = pytest.importorskip("mer_jax.training.objectives")
    rng = np.random.default_rng(5)
    outputs = {k: rng.normal(scale=2.0, size=(3, 4, CLASSES)).astype(np.float32)
               for k in ("logits", "text_logits", "audio_logits")}
    weight = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32)
    label = rng.integers(0, CLASSES, (3, 4)).astype(np.int32)
    weights = dict(temperature=temperature, task_weight=1.5, ce_weight=1.0, kl_weight=kl_weight)

    def ours_fn(outputs):
        return objectives.self_distillation(outputs, {"label": jnp.asarray(label), "weight": jnp.asarray(weight)},
                                            **weights)

    (loss, terms), grads = jax.value_and_grad(ours_fn, has_aux=True)(jax.tree.map(jnp.asarray, outputs))
    torch_outputs = {k: torch.tensor(v, requires_grad=True) for k, v in outputs.items()}
    expected, expected_terms = self_distillation_loss(torch_outputs, torch.tensor(label), torch.tensor(weight),
                                                      **weights)
    expected.backward()
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-5)
    assert set(terms) == set(expected_terms)
    for name in terms:
        np.testing.assert_allclose(terms[name], expected_terms[name].item(), rtol=1e-5, atol=1e-6)
    for name in outputs:  # the teacher gets no gradient through the KL terms
        np.testing.assert_allclose(grads[name], torch_outputs[name].grad.numpy(), atol=1e-6)


# --- config --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("modalities", "video"), ("hidden", 0), ("dropout", 1.0), ("dropout", -0.1), ("context", "yes"),
])
def test_check_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        check({**DEFAULTS, field: value})


def test_check_refuses_a_model_without_attention():
    with pytest.raises(ValueError, match="intra_attention"):
        check({**DEFAULTS, "inter_attention": False, "intra_attention": False})
    with pytest.raises(ValueError, match="intra_attention"):
        check({**DEFAULTS, "modalities": "text", "intra_attention": False})
    check({**DEFAULTS, "modalities": "audio", "inter_attention": True})  # ignored by a unimodal model


def test_build_from_a_config_section():
    section = ml_collections.ConfigDict({"name": "lpgnet", **DEFAULTS, "hidden": HIDDEN, "gated_fusion": False})
    model = build(section, num_classes=CLASSES, text_dim=TEXT_DIM, audio_dim=AUDIO_DIM,
                  rngs=nnx.Rngs(params=0, dropout=0))
    assert model.classifier.kernel.shape == (HIDDEN, CLASSES) and model.gates is None
    outputs = run(model, random_batch(0, [6, 3, 1, 0, 4], 6))
    assert {k: v.shape for k, v in outputs.items()} == {k: (5, 6, CLASSES)
                                                         for k in ("logits", "text_logits", "audio_logits")}


def test_ffn_once_per_dialogue_equals_the_ffn_of_the_broadcast_input():
    """Eq. 7 on A_conv broadcast over U utterances, with per-utterance dropout masks, computed the long way."""
    from mer_jax.layers.lpia import PositionFFN

    ffn = PositionFFN(6, 24, 0.5, rngs=nnx.Rngs(params=0, dropout=1))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 6)), jnp.float32)
    for train in (True, False):
        ffn.train() if train else ffn.eval()
        nnx.reseed(ffn, dropout=7)
        fast = ffn(x, 5)
        nnx.reseed(ffn, dropout=7)
        broadcast = jnp.broadcast_to(x[:, None], (3, 5, 6))
        slow = ffn.down(ffn.dropout(jax.nn.gelu(ffn.up(ffn.norm(broadcast)), approximate=False)))
        np.testing.assert_allclose(fast, slow, atol=1e-6)
        assert train == bool((np.abs(np.asarray(fast[:, 0] - fast[:, 1])) > 1e-6).any())  # masks differ per utterance
