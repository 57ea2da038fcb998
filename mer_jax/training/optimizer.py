"""Layer-wise AdamW (the dynamic-fusion paper, Section 4.2): one learning rate for the text encoder,
another for everything else, global-norm gradient clipping, warmup then cosine decay.

A frozen ("static") encoder gets no updates at all: its gradients are replaced by zeros, so it stays
exactly at its pretrained values.
"""

from __future__ import annotations

import jax
import optax

ENCODER = "text_encoder"  # the attribute name of the text encoder in every model


def schedule(peak: float, total_steps: int, warmup_steps: int) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, max(total_steps, warmup_steps + 1),
                                              end_value=peak * 0.01)


def parameter_groups(params) -> object:
    """'encoder' for parameters under the text encoder, 'rest' for all others (same tree as params)."""
    def group(path, _):
        return "encoder" if any(getattr(k, "key", None) == ENCODER for k in path) else "rest"

    return jax.tree_util.tree_map_with_path(group, params)


def make_optimizer(train_config, total_steps: int) -> optax.GradientTransformation:
    """AdamW with the config's encoder/rest learning rates; the encoder frozen if asked."""
    warmup = int(train_config.warmup_fraction * total_steps)

    def adamw(lr):
        return optax.adamw(schedule(lr, total_steps, warmup), weight_decay=train_config.weight_decay)

    encoder = optax.set_to_zero() if train_config.freeze_encoder else adamw(train_config.encoder_lr)
    return optax.chain(
        optax.clip_by_global_norm(train_config.clip_norm),
        optax.multi_transform({"encoder": encoder, "rest": adamw(train_config.lr)}, parameter_groups),
    )
