"""What every model offers the training core, besides ``__call__(batch) -> {"logits": ..., ...}``."""

from __future__ import annotations

from flax import nnx


class EmotionModel(nnx.Module):
    """A model the core can train: it names its pretrained encoder sub-modules (text: trained at
    ``train.encoder_lr``, frozen by ``train.freeze_encoder``; speech: ``train.audio_encoder_lr``,
    ``train.freeze_audio_encoder``) and may fix statistics from the training part before training (e.g.
    feature standardisation)."""

    encoder_modules: tuple[str, ...] = ()
    audio_encoder_modules: tuple[str, ...] = ()

    def prepare(self, train) -> None:
        """Fix whatever the model takes from the training part's examples (nothing by default)."""
