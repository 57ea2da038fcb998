"""model.dtype = bfloat16: every matmul of the model computes in bfloat16, parameters and optimiser stay
float32, and the predictions stay those of the float32 model within bfloat16's precision."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mer_jax.config import base_config
from mer_jax.models.registry import build_model
from mer_jax.training.objectives import make_objective
from mer_jax.training.steps import SplitModel, make_train_step


def _dynamic_fusion():
    c = base_config()
    c.model.update(d_model=16, num_heads=2, dropout=0.0)
    c.text.update(hidden=16, heads=2, layers=2)
    c.features.max_tokens = 12
    rng = np.random.default_rng(0)
    lengths, tokens = rng.integers(3, 21, 4), rng.integers(2, 9, 4)
    batch = {"mfcc": rng.normal(size=(4, 20, 40)).astype(np.float32), "mfcc_length": lengths.astype(np.int32),
             "input_ids": rng.integers(5, 30, (4, 8)).astype(np.int32),
             "attention_mask": (np.arange(8)[None] < tokens[:, None]).astype(np.int32)}
    return c, {"num_classes": 6, "vocab_size": 30}, batch, np.arange(4) % 6, np.ones(4, np.float32)


def _lpgnet():
    c = base_config("lpgnet")
    c.model.update(hidden=16, dropout=0.0)
    rng = np.random.default_rng(1)
    mask = (np.arange(7)[None] < np.array([7, 3, 5])[:, None]).astype(np.float32)
    batch = {"text": rng.normal(size=(3, 7, 12)).astype(np.float32),
             "audio": rng.normal(size=(3, 7, 10)).astype(np.float32), "utterance_mask": mask}
    return c, {"num_classes": 4, "text_dim": 12, "audio_dim": 10}, batch, rng.integers(0, 4, (3, 7)), mask


def _dot_dtypes(jaxpr) -> set:
    """The operand dtypes of every dot_general in a jaxpr, inner jaxprs (scan bodies, ...) included."""
    found = set()
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found |= {v.aval.dtype.name for v in eqn.invars}
        for value in eqn.params.values():
            for inner in value if isinstance(value, tuple | list) else [value]:
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns"):
                    found |= _dot_dtypes(inner)
    return found


@pytest.mark.parametrize("make", [_dynamic_fusion, _lpgnet])
def test_bfloat16_computes_every_matmul_in_bfloat16_and_predicts_like_float32(make):
    config, sizes, batch, _, _ = make()
    model = build_model(config, sizes)
    full, half = SplitModel.of(model), SplitModel.of(model, "bfloat16")
    logits = {name: jax.jit(lambda p, o, b, s=split: s.outputs(p, o, b)["logits"].astype(jnp.float32))
              for name, split in (("full", full), ("half", half))}
    probabilities = {name: np.asarray(jax.nn.softmax(f(full.params, full.other, batch))) for name, f in logits.items()}
    assert np.abs(probabilities["half"] - probabilities["full"]).max() < 3e-2  # bf16 keeps 8 bits of mantissa
    assert np.abs(probabilities["half"] - probabilities["full"]).max() > 0  # and it did compute in bf16
    half_jaxpr = jax.make_jaxpr(lambda p, o, b: half.outputs(p, o, b)["logits"])(full.params, full.other, batch)
    full_jaxpr = jax.make_jaxpr(lambda p, o, b: full.outputs(p, o, b)["logits"])(full.params, full.other, batch)
    assert _dot_dtypes(half_jaxpr.jaxpr) == {"bfloat16"} and _dot_dtypes(full_jaxpr.jaxpr) == {"float32"}


@pytest.mark.parametrize("make", [_dynamic_fusion, _lpgnet])
def test_bfloat16_training_keeps_float32_parameters_and_state_and_learns(make):
    config, sizes, batch, labels, weight = make()
    split = SplitModel.of(build_model(config, sizes), "bfloat16")
    optimizer = optax.adam(1e-2)
    step = make_train_step(split, optimizer, make_objective(config.objective))
    stacked = lambda tree: jax.tree.map(lambda x: jnp.asarray(x)[None], tree)  # noqa: E731 (one seed)
    params, other = stacked(split.params), stacked(split.other)
    opt_state = jax.vmap(optimizer.init)(params)
    dtypes = jax.tree.map(lambda x: x.dtype, (params, other))
    seeded = stacked({**batch, "label": np.asarray(labels, np.int32), "weight": weight})
    losses = []
    for k in range(30):
        params, other, opt_state, measured = step(params, other, opt_state, seeded, jax.random.split(jax.random.key(k), 1))
        losses.append(float(measured["loss"][0]))
    assert jax.tree.map(lambda x: x.dtype, (params, other)) == dtypes  # float32 stays float32, nothing recompiles
    assert all(np.isfinite(losses)) and losses[-1] < 0.5 * losses[0]  # it fits the batch in bfloat16
