"""LPGNet (Frame) (papers/lpgnet.md, Section 4.4, Table 2): LPGNet over the token and acoustic-frame
sequences of one utterance instead of a dialogue's utterance vectors.

"both text tokens and acoustic frames are padded or truncated to a fixed length of 512": the text
encoder's token states (``text.encoder``, fine-tuned at ``train.encoder_lr`` or frozen by
``train.freeze_encoder``) and the utterance's acoustic frames each become a sequence of ``length``
positions with a mask. The frames are MFCCs (standardised with the training part's statistics), or,
as in the paper (emotion2vec frames), a speech encoder's states over the waveform (``audio.encoder``,
its ``audio.layer``; fine-tuned at ``train.audio_encoder_lr`` or frozen by ``train.freeze_audio_encoder``). The LPGNet of
`mer_jax.models.lpgnet` runs over those positions unchanged (Eq. 2-18): tokens attend to tokens,
frames to frames, each to the other across modalities, Eq. 6 pools a sequence's real positions, and
Eq. 12-14 fuse the two modalities position by position (token i beside frame i: why both share one
length). Where the paper is silent we choose: the utterance's prediction is the mean of the
per-position logits over the positions where either modality is real (the classifier and student
heads are linear, so this equals classifying the mean fused representation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.data.examples import Examples
from mer_jax.layers.feature_norm import FeatureNorm
from mer_jax.layers.pooling import length_mask, masked_mean
from mer_jax.layers.random_gain import RandomGain
from mer_jax.layers.spec_augment import SpecAugment
from mer_jax.models import lpgnet
from mer_jax.models.base import EmotionModel
from mer_jax.models.speech_encoder import SpeechBranch
from mer_jax.models.text_encoder import encode_text

DEFAULTS = {**{k: v for k, v in lpgnet.DEFAULTS.items() if k != "context"}, "length": 512}


def fit_length(x: jax.Array, mask: jax.Array, length: int) -> tuple[jax.Array, jax.Array]:
    """(B, T, F) and its (B, T) mask, padded with zeros or truncated to (B, length, F) and (B, length)."""
    x, mask = x[:, :length], mask[:, :length]
    pad = length - x.shape[1]
    return jnp.pad(x, ((0, 0), (0, pad), (0, 0))), jnp.pad(mask, ((0, 0), (0, pad)))


class LPGNetFrame(EmotionModel):
    encoder_modules = ("text_encoder",)
    audio_encoder_modules = ("speech_encoder",)

    def __init__(self, *, num_classes: int, n_mfcc: int, text_encoder: nnx.Module | None, text_hidden: int,
                 length: int = 512, augment: SpecAugment | None = None, gain: RandomGain | None = None,
                 speech: SpeechBranch | None = None, rngs: nnx.Rngs, **lpgnet_fields):
        """`speech`: a speech encoder whose states over the waveform are the acoustic frames, instead of MFCCs."""
        self.length = length
        self.speech = speech
        audio_dim = n_mfcc if self.speech is None else self.speech.hidden_size
        self.lpgnet = lpgnet.LPGNet(num_classes=num_classes, text_dim=text_hidden, audio_dim=audio_dim, rngs=rngs,
                                    **lpgnet_fields)
        self.modalities = self.lpgnet.modalities
        if "text" in self.modalities:
            self.text_encoder = text_encoder
        if "audio" in self.modalities and self.speech is None:
            self.feature_norm = FeatureNorm(n_mfcc)
            self.augment, self.gain = augment, gain

    def prepare(self, train: Examples) -> None:
        """Fix the MFCC standardisation from the training part's frames."""
        if "audio" in self.modalities and self.speech is None:
            self.feature_norm.set_statistics(train.fields["mfcc"].values)

    def __call__(self, batch: dict) -> dict:
        """``logits`` (B, C) (and the students' ``text_logits`` / ``audio_logits``) of a batch with
        input_ids and attention_mask, and mfcc and mfcc_length (or waveform and waveform_length)."""
        inputs, masks = {}, {}
        if "text" in self.modalities:
            states, own = encode_text(self.text_encoder, batch)
            inputs["text"], masks["text"] = fit_length(states.astype(jnp.float32), own, self.length)
        if "audio" in self.modalities:
            if self.speech is not None:
                frames, real = self.speech(batch["waveform"], batch["waveform_length"])
                frames = frames.astype(jnp.float32)
            else:
                frames = self.feature_norm(batch["mfcc"] if self.gain is None else self.gain(batch["mfcc"]))
                if self.augment is not None:
                    frames = self.augment(frames, batch["mfcc_length"])
                real = length_mask(batch["mfcc_length"], frames.shape[1])
            inputs["audio"], masks["audio"] = fit_length(frames, real, self.length)
        real = jnp.stack(list(masks.values())).any(axis=0)
        return {name: masked_mean(logits, real) for name, logits in self.lpgnet.positions(inputs, masks).items()}


def check(section) -> None:
    """Refuse a config section no LPGNet (Frame) can use, naming the field."""
    lpgnet.check({k: section[k] for k in DEFAULTS if k != "length"})
    if not isinstance(section.length, int) or section.length <= 0:
        raise ValueError(f"model.length = {section.length!r}: must be a positive integer")


def build(section, *, num_classes: int, n_mfcc: int, text_encoder: nnx.Module | None, text_hidden: int,
          augment: SpecAugment | None = None, gain: RandomGain | None = None, speech: SpeechBranch | None = None,
          rngs: nnx.Rngs) -> LPGNetFrame:
    check(section)
    return LPGNetFrame(num_classes=num_classes, n_mfcc=n_mfcc, text_encoder=text_encoder, text_hidden=text_hidden,
                       augment=augment, gain=gain, speech=speech, rngs=rngs, **{k: section[k] for k in DEFAULTS})
