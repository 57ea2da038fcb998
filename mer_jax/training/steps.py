"""Pure, jit-compiled train and eval steps over split NNX state.

The model is split once into a graph definition (one for training, with dropout on, one for
evaluation) and state: `params` (trained) and `other` (e.g. feature statistics, batch-norm
statistics; carried, not trained). Each step merges them inside `jax.jit`, so the hot loop has no
Python-side module state; dropout keys are derived from (seed, step), so a resumed run draws the
same masks as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mer_jax.training.optimizer import parameter_groups


@dataclasses.dataclass(frozen=True)
class SplitModel:
    """A model split for pure steps: graph definitions for train/eval and the state they merge with."""

    train_graph: nnx.GraphDef
    eval_graph: nnx.GraphDef
    params: nnx.State
    other: nnx.State
    rngs: nnx.State

    @classmethod
    def of(cls, model: nnx.Module) -> "SplitModel":
        model.train()
        train_graph, params, rngs, other = nnx.split(model, nnx.Param, nnx.RngState, ...)
        model.eval()
        eval_graph, *_ = nnx.split(model, nnx.Param, nnx.RngState, ...)
        return cls(train_graph, eval_graph, params, other, rngs)

    def merge(self, params, other, train: bool = False) -> nnx.Module:
        # Fresh copies of the RNG variables, so that reseeding them inside a trace mutates nothing outside.
        rngs = jax.tree.map(jnp.copy, self.rngs)
        return nnx.merge(self.train_graph if train else self.eval_graph, params, rngs, other)


def weighted_cross_entropy(logits, labels, weights):
    """Mean cross-entropy over the examples with weight 1 (padding examples have weight 0)."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    return (losses * weights).sum() / jnp.maximum(weights.sum(), 1.0)


def make_train_step(split: SplitModel, optimizer: optax.GradientTransformation, *, freeze_encoder: bool):
    """(params, other, opt_state, batch, key) -> (params, other, opt_state, measurements)."""

    def loss_fn(params, other, batch, key):
        if freeze_encoder:  # a static encoder: no gradient flows into it (and no backward pass through it)
            params = jax.tree.map(lambda g, p: jax.lax.stop_gradient(p) if g == "encoder" else p,
                                  parameter_groups(params), params)
        model = split.merge(params, other, train=True)
        nnx.reseed(model, dropout=key)
        logits = model(batch)
        loss = weighted_cross_entropy(logits, batch["label"], batch["weight"])
        _, _, _, new_other = nnx.split(model, nnx.Param, nnx.RngState, ...)
        return loss, (logits, new_other)

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def train_step(params, other, opt_state, batch, key):
        (loss, (logits, other)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, other, batch, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        correct = (logits.argmax(-1) == batch["label"]) * batch["weight"]
        return params, other, opt_state, {
            "loss": loss, "accuracy": correct.sum() / jnp.maximum(batch["weight"].sum(), 1.0),
            "grad_norm": optax.tree.norm(grads),
        }

    return train_step


def make_eval_step(split: SplitModel):
    """(params, other, batch) -> class probabilities (B, num_classes)."""

    @jax.jit
    def eval_step(params, other, batch):
        return jax.nn.softmax(split.merge(params, other)(batch).astype(jnp.float32), axis=-1)

    return eval_step
