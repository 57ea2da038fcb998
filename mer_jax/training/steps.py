"""Pure, jit-compiled train and eval steps over split NNX state; they know no model and no loss.

Every step runs N seeds at once (``jax.vmap`` over a leading seed axis of parameters, other state,
optimiser state, batches and dropout keys; N = 1 for a single run): clipping and optimiser state
stay per seed, nothing couples the seeds, and one compiled program trains all of them.

The model is split once into a graph definition (one for training, with dropout on, one for
evaluation) and state: `params` (trained) and `other` (e.g. feature statistics, batch-norm
statistics; carried, not trained). Each step merges them inside `jax.jit`, so the hot loop has no
Python-side module state. Every step reseeds the model's ``dropout`` stream from its key, derived
from (seed, step): each dropout layer draws a new mask every step, and a resumed run draws the same
masks as an uninterrupted one.

Mixed precision (``model.dtype``): parameters, optimiser state and gradients stay float32; inside
each step the floating parameters, the other state and the batch's floating fields are cast to the
compute dtype (e.g. bfloat16), so every layer of the model computes in it; updated other state
(batch-norm averages) is cast back, and losses and probabilities are computed in float32.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx


@dataclasses.dataclass(frozen=True)
class SplitModel:
    """A model split for pure steps: graph definitions for train/eval and the state they merge with."""

    train_graph: nnx.GraphDef
    eval_graph: nnx.GraphDef
    params: nnx.State
    other: nnx.State
    rngs: nnx.State
    compute_dtype: jnp.dtype = jnp.dtype(jnp.float32)  # what the model computes in (``model.dtype``)

    @classmethod
    def of(cls, model: nnx.Module, compute_dtype: str = "float32") -> "SplitModel":
        model.train()
        train_graph, params, rngs, other = nnx.split(model, nnx.Param, nnx.RngState, ...)
        model.eval()
        eval_graph, *_ = nnx.split(model, nnx.Param, nnx.RngState, ...)
        return cls(train_graph, eval_graph, params, other, rngs, jnp.dtype(compute_dtype))

    def cast(self, tree):
        """The floating arrays of `tree` in the compute dtype (integers and booleans as they are)."""
        if self.compute_dtype == jnp.float32:
            return tree
        return jax.tree.map(lambda x: x.astype(self.compute_dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                            tree)

    def merge(self, params, other, train: bool = False) -> nnx.Module:
        # Fresh copies of the RNG and other state (e.g. batch-norm statistics), so that reseeding or
        # updating them inside a trace (here, under jax.grad) mutates nothing outside it.
        rngs, other = jax.tree.map(jnp.copy, (self.rngs, other))
        return nnx.merge(self.train_graph if train else self.eval_graph, params, rngs, other)

    def apply(self, params, other, batch, dropout_key) -> tuple[dict, nnx.State]:
        """Training-mode outputs with dropout masks drawn from `dropout_key`, and the updated `other`
        state (e.g. batch-norm running averages), in the dtypes `other` came in."""
        model = self.merge(*self.cast((params, other)), train=True)
        nnx.reseed(model, dropout=dropout_key)
        outputs = model(self.cast(batch))
        _, _, _, updated = nnx.split(model, nnx.Param, nnx.RngState, ...)
        return outputs, jax.tree.map(lambda new, old: new.astype(old.dtype), updated, other)

    def outputs(self, params, other, batch) -> dict:
        """Evaluation-mode outputs of a batch, computed in the compute dtype."""
        return self.merge(*self.cast((params, other)))(self.cast(batch))


def accuracy(logits: jax.Array, batch: dict) -> jax.Array:
    """Accuracy over the real utterances of a batch (logits (B, C) or (B, U, C))."""
    correct = (logits.argmax(-1) == batch["label"]) * batch["weight"]
    return correct.sum() / jnp.maximum(batch["weight"].sum(), 1.0)


def make_train_step(split: SplitModel, optimizer: optax.GradientTransformation, objective, *, frozen=None,
                    state_sharding: jax.sharding.Sharding | None = None, guard: bool = False):
    """(params, other, opt_state, batch, key) -> (params, other, opt_state, measurements), every argument
    and result with a leading seed axis (keys (N,), batches (N, B, ...)).

    `objective` maps (outputs, batch) to (loss, terms); every term is measured. `frozen` (a tree like
    params, True where a parameter is frozen) stops gradients into those: a static encoder costs no
    backward pass. `state_sharding` (e.g. replicated over the data mesh) places the updated state as
    the state that comes in: left to XLA, the outputs' shardings can differ from the inputs' (a seed
    axis split over ``data``), and the step then compiles a second time on its second call.

    With `guard`, the step also takes the global step number (a scalar) and each seed's divergence
    record (`no_divergence`), and returns the record after the measurements: a seed's first step whose
    loss, gradient norm or updated state is not finite is recorded (its step, loss and gradient norm),
    and from that step on the seed's state stays as it was before it and it measures NaN. A seed's
    state never becomes non-finite, and the record stays on the device until the loop reads it
    (training/divergence.py).
    """

    def loss_fn(params, other, batch, key):
        if frozen is not None:
            params = jax.tree.map(lambda f, p: jax.lax.stop_gradient(p) if f else p, frozen, params)
        outputs, other = split.apply(params, other, batch, key)
        loss, terms = objective(outputs, batch)
        return loss, (outputs["logits"], terms, other)

    def one_seed(params, other, opt_state, batch, key):
        (loss, (logits, terms, other)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, other, batch, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, other, opt_state, {"loss": loss, **terms, "accuracy": accuracy(logits, batch),
                                          "grad_norm": optax.tree.norm(grads)}

    def guarded(params, other, opt_state, batch, key, step, diverged):
        *updated, measured = one_seed(params, other, opt_state, batch, key)
        loss, grad_norm = measured["loss"].astype(jnp.float32), measured["grad_norm"].astype(jnp.float32)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & all_finite(updated)
        first = (diverged["step"] < 0) & ~finite
        diverged = {"step": jnp.where(first, step, diverged["step"]), "loss": jnp.where(first, loss, diverged["loss"]),
                    "grad_norm": jnp.where(first, grad_norm, diverged["grad_norm"])}
        out = diverged["step"] >= 0  # this step or an earlier one was not finite: the seed keeps its state
        state = jax.tree.map(lambda old, new: jnp.where(out, old, new), (params, other, opt_state), tuple(updated))
        measured = jax.tree.map(lambda x: jnp.where(out, jnp.nan, x), measured)
        return *state, measured, diverged

    if guard:
        out_shardings = None if state_sharding is None else (state_sharding,) * 3 + (None, state_sharding)
        return jax.jit(jax.vmap(guarded, in_axes=(0, 0, 0, 0, 0, None, 0)), donate_argnums=(0, 1, 2, 6),
                       out_shardings=out_shardings)
    out_shardings = None if state_sharding is None else (state_sharding,) * 3 + (None,)
    return jax.jit(jax.vmap(one_seed), donate_argnums=(0, 1, 2), out_shardings=out_shardings)


def no_divergence(seeds: int) -> dict:
    """The divergence record of `seeds` seeds that have not diverged: per seed the global step of its first
    non-finite step (-1: none), and that step's loss and gradient norm."""
    return {"step": jnp.full(seeds, -1, jnp.int32), "loss": jnp.zeros(seeds, jnp.float32),
            "grad_norm": jnp.zeros(seeds, jnp.float32)}


def all_finite(tree) -> jax.Array:
    """Whether every floating value of `tree` is finite (a scalar boolean)."""
    checks = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.stack(checks).all() if checks else jnp.array(True)


def make_eval_step(split: SplitModel, *, seeds: bool = False):
    """(params, other, batch) -> class probabilities, shaped like the logits ((B, C) or (B, U, C)).

    With ``seeds``, params and other carry a leading seed axis and every seed scores the same batch:
    (N, B, ..., C).
    """
    def probabilities(params, other, batch):
        return jax.nn.softmax(split.outputs(params, other, batch)["logits"].astype(jnp.float32), axis=-1)

    return jax.jit(jax.vmap(probabilities, in_axes=(0, 0, None)) if seeds else probabilities)


def stack(trees: list):
    """Per-seed pytrees -> one pytree with a leading seed axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def seed_slice(tree, index: int):
    """One seed's pytree out of a stacked one."""
    return jax.tree.map(lambda x: x[index], tree)
