"""Layer-wise AdamW (the dynamic-fusion paper, Section 4.2): one learning rate for the pretrained
text encoder, one for a pretrained speech encoder, another for everything else, global-norm gradient clipping (``clip_norm`` 0: none), warmup
then cosine decay (or a constant rate), and optionally an exponential moving average of the parameters
(``ema_decay``) that validation, checkpoints and test use instead of the raw parameters.

Which parameters form the "encoder" and "audio_encoder" groups is the model's to say (its
``encoder_modules`` and ``audio_encoder_modules``). Weight
decay: ``adamw`` (decoupled) decays matrices only (kernels, embeddings), not biases and normalisation
scales, as most Transformer recipes do (the dynamic-fusion paper does not say); ``adam`` adds the L2
penalty to every parameter's gradient, biases and norm scales included, as PyTorch's
``Adam(weight_decay=...)`` does (LPGNet's recipe; tests/test_optimizer.py holds it to torch). A frozen
("static") encoder gets no updates at all: its gradients are replaced by zeros, so it stays exactly at
its pretrained values.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


def schedule(train_config, peak: float, total_steps: int) -> optax.Schedule:
    """``warmup_cosine``: linear warmup over ``warmup_fraction`` of the steps, cosine decay to 1% of the
    peak; ``constant``: the peak throughout (LPGNet's recipe names no schedule)."""
    if train_config.schedule == "constant":
        return optax.constant_schedule(peak)
    warmup = int(train_config.warmup_fraction * total_steps)
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, max(total_steps, warmup + 1), end_value=peak * 0.01)


def parameter_groups(params, encoder_modules: tuple[str, ...], audio_encoder_modules: tuple[str, ...] = ()):
    """'encoder' for parameters under one of `encoder_modules`, 'audio_encoder' under one of
    `audio_encoder_modules`, 'rest' for all others (same tree as params)."""
    def group(path, _):
        keys = {getattr(k, "key", None) for k in path}
        return "encoder" if keys & set(encoder_modules) else "audio_encoder" if keys & set(audio_encoder_modules) else "rest"

    return jax.tree_util.tree_map_with_path(group, params)


def frozen_groups(train_config) -> tuple[str, ...]:
    """The groups that stay at their pretrained values (``freeze_encoder``, ``freeze_audio_encoder``)."""
    return (("encoder",) if train_config.freeze_encoder else ()) + (
        ("audio_encoder",) if train_config.get("freeze_audio_encoder") else ())


def decays(params):
    """True for the parameters that AdamW's weight decay shrinks: matrices, not biases or norm scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def learning_rates(train_config, total_steps: int, groups) -> dict[str, optax.Schedule]:
    """Each trained parameter group's learning-rate schedule over `total_steps` updates (frozen groups have
    none)."""
    peaks = {"encoder": train_config.encoder_lr, "audio_encoder": train_config.get("audio_encoder_lr", 0.0),
             "rest": train_config.lr}
    return {name: schedule(train_config, peak, total_steps) for name, peak in peaks.items()
            if name in _present(groups) and name not in frozen_groups(train_config)}


def _present(groups) -> set[str]:
    """The groups an optimiser has a transform for: encoder and rest always (a model without a text encoder
    keeps the same state shape), audio_encoder where a model has one."""
    return {"encoder", "rest", *jax.tree.leaves(groups)}


def make_optimizer(train_config, total_steps: int, groups) -> optax.GradientTransformation:
    """Adam(W) with the config's encoder/rest learning rates over `groups` (see `parameter_groups`).

    ``adamw`` decays matrices decoupled from the gradient; ``adam`` adds the L2 penalty of every parameter
    to the gradient before Adam's scaling, as PyTorch's ``Adam(weight_decay=...)`` does (LPGNet's "L2
    weight decay").
    `total_steps` counts updates (batches / ``train.accumulate_steps``): the schedule's length.
    """
    def adam(rate):
        if train_config.optimizer == "adam":
            return optax.chain(optax.add_decayed_weights(train_config.weight_decay), optax.adam(rate))
        return optax.adamw(rate, weight_decay=train_config.weight_decay, mask=decays)

    rates = learning_rates(train_config, total_steps, groups)
    transforms = {name: adam(rates[name]) if name in rates else optax.set_to_zero() for name in _present(groups)}
    clip = optax.clip_by_global_norm(train_config.clip_norm) if train_config.clip_norm > 0 else optax.identity()
    optimizer = optax.chain(clip, optax.multi_transform(transforms, groups))
    if train_config.ema_decay > 0:
        optimizer = optax.chain(optimizer, parameter_average(train_config.ema_decay))
    if train_config.accumulate_steps > 1:  # the mean gradient of k batches, clipped and applied once
        optimizer = optax.MultiSteps(optimizer, every_k_schedule=train_config.accumulate_steps).gradient_transformation()
    return optimizer


class ParameterAverageState(NamedTuple):
    count: jax.Array
    averaged_params: optax.Params


def parameter_average(decay: float) -> optax.GradientTransformation:
    """Polyak-style exponential moving average of the parameters after each update (updates pass
    unchanged): avg <- d_t avg + (1 - d_t) params, with d_t = min(decay, (1 + t) / (10 + t)) as in
    TensorFlow's ``ExponentialMovingAverage(num_updates=t)``, so the early average follows the
    parameters instead of their initial values. Kept in the optimiser state, so it is per seed,
    checkpointed and resumed with it; ``evaluated_params`` reads it."""

    def init(params):
        return ParameterAverageState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.copy, params))

    def update(updates, state, params):
        d = jnp.minimum(decay, (1.0 + state.count) / (10.0 + state.count))
        new = optax.apply_updates(params, updates)
        averaged = jax.tree.map(lambda a, p: d * a + (1 - d) * p, state.averaged_params, new)
        return updates, ParameterAverageState(state.count + 1, averaged)

    return optax.GradientTransformation(init, update)


def evaluated_params(train_config, params, opt_state):
    """The parameters that validation, the best checkpoint and test use: the moving average where
    ``ema_decay`` > 0, the trained parameters otherwise."""
    if train_config.ema_decay > 0:
        return optax.tree_utils.tree_get(opt_state, "averaged_params")
    return params
