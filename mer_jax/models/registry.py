"""From a config to a model: the one place that knows every model's name.

Each model module says what its config section holds (``DEFAULTS``), which values it refuses
(``check``) and how it is built; its spec here adds what the model reads from a corpus.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from flax import nnx

from mer_jax.models import dynamic_fusion
from mer_jax.models.text_encoder import build_text_encoder


def model_rngs(seed: int) -> nnx.Rngs:
    """The named random streams every model is built with: ``params`` for initialisation and
    ``dropout``, which the train step reseeds from (seed, step) so that every step draws new masks."""
    return nnx.Rngs(params=seed, dropout=seed + 1)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    defaults: dict  # the model's config section with its defaults
    check: Callable  # (model section) -> None, raising ValueError for values the model cannot use
    modalities: Callable  # (config) -> the corpus modalities the model reads: a subset of {"audio", "text"}
    build: Callable  # (config, num_classes, vocab_size, rngs) -> model
    objective: str = "cross_entropy"  # the default loss (mer_jax/training/objectives.py)


def _build_dynamic_fusion(config, num_classes: int, vocab_size: int, rngs: nnx.Rngs):
    reads_text = "text" in config.model.modalities
    encoder, hidden = (build_text_encoder(config.text, max_tokens=config.features.max_tokens,
                                          dropout=config.model.dropout, frozen=config.train.freeze_encoder,
                                          vocab_size=vocab_size, rngs=rngs) if reads_text else (None, 0))
    return dynamic_fusion.build(config.model, num_classes=num_classes, n_mfcc=config.features.n_mfcc,
                                text_encoder=encoder, text_hidden=hidden, rngs=rngs)


MODELS = {
    "dynamic_fusion": ModelSpec(dynamic_fusion.DEFAULTS, dynamic_fusion.check,
                                lambda config: set(config.model.modalities.split("+")), _build_dynamic_fusion),
}


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"model.name = {name!r}: must be one of {sorted(MODELS)}")
    return MODELS[name]


def build_model(config, num_classes: int, vocab_size: int = 0) -> nnx.Module:
    """The model ``config.model.name`` names, initialised from ``config.seed``."""
    return get_model_spec(config.model.name).build(config, num_classes, vocab_size, model_rngs(config.seed))
