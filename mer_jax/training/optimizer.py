"""Layer-wise AdamW (the dynamic-fusion paper, Section 4.2): one learning rate for the pretrained
encoder(s), another for everything else, global-norm gradient clipping, warmup then cosine decay.

Which parameters form the "encoder" group is the model's to say (its ``encoder_modules``). Weight
decay applies to matrices only (kernels, embeddings), not to biases and normalisation scales, as most
Transformer recipes do; the papers do not say. A frozen ("static") encoder gets no updates at all:
its gradients are replaced by zeros, so it stays exactly at its pretrained values.
"""

from __future__ import annotations

import jax
import optax


def schedule(peak: float, total_steps: int, warmup_steps: int) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, max(total_steps, warmup_steps + 1),
                                              end_value=peak * 0.01)


def parameter_groups(params, encoder_modules: tuple[str, ...]):
    """'encoder' for parameters under one of `encoder_modules`, 'rest' for all others (same tree as params)."""
    def group(path, _):
        return "encoder" if any(getattr(k, "key", None) in encoder_modules for k in path) else "rest"

    return jax.tree_util.tree_map_with_path(group, params)


def decays(params):
    """True for the parameters that weight decay shrinks: matrices, not biases or norm scales."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(train_config, total_steps: int, groups) -> optax.GradientTransformation:
    """AdamW with the config's encoder/rest learning rates over `groups` (see `parameter_groups`)."""
    warmup = int(train_config.warmup_fraction * total_steps)

    def adamw(lr):
        return optax.adamw(schedule(lr, total_steps, warmup), weight_decay=train_config.weight_decay, mask=decays)

    encoder = optax.set_to_zero() if train_config.freeze_encoder else adamw(train_config.encoder_lr)
    return optax.chain(
        optax.clip_by_global_norm(train_config.clip_norm),
        optax.multi_transform({"encoder": encoder, "rest": adamw(train_config.lr)}, groups),
    )
