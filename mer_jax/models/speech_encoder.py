"""The audio branch's speech encoder, as the config's ``audio`` section names it: a pretrained wav2vec2,
HuBERT, WavLM, data2vec-audio or emotion2vec model over the raw waveform, its layers mixed as SUPERB does."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.data.audio import SAMPLE_RATE
from mer_jax.encoders import from_pretrained, load_preprocessor
from mer_jax.encoders.emotion2vec import Emotion2vecEncoder
from mer_jax.encoders.speech import SpeechEncoder
from mer_jax.layers.batch_norm import MaskedBatchNorm
from mer_jax.layers.pooling import length_mask

class SpeechBranch(nnx.Module):
    """Waveforms (B, T) with their lengths -> frame states (B, F, H) and the (B, F) mask of real frames.

    The waveform is standardised over its real samples when the checkpoint's preprocessing says so
    (``normalize``: transformers' `Wav2Vec2FeatureExtractor` with epsilon 1e-7, FunASR's emotion2vec with
    1e-5); the states are one hidden state
    (``layer`` an index into the encoder's num_hidden_layers + 1 hidden states) or their learned
    softmax-weighted sum (``layer="weighted"``, the SUPERB recipe; the weights start equal).
    """

    def __init__(self, encoder: SpeechEncoder | Emotion2vecEncoder, *, normalize: bool, layer: str | int,
                 epsilon: float = 1e-7):
        self.speech_encoder, self.normalize, self.layer, self.epsilon = encoder, normalize, layer, epsilon
        self.hidden_size = encoder.hidden_size
        count = encoder.config.num_hidden_layers + 1
        if layer == "weighted":
            self.layer_weights = nnx.Param(jnp.zeros(count))
        elif not (isinstance(layer, int) and -count <= layer < count):
            raise ValueError(f"audio.layer = {layer!r}: 'weighted' or a hidden-state index in [{-count}, {count})")

    def __call__(self, waveform: jax.Array, lengths: jax.Array) -> tuple[jax.Array, jax.Array]:
        mask = length_mask(lengths, waveform.shape[1])
        if self.normalize:
            count = jnp.maximum(lengths, 1)[:, None].astype(jnp.float32)
            mean = jnp.where(mask, waveform, 0.0).sum(-1, keepdims=True) / count
            var = jnp.where(mask, jnp.square(waveform - mean), 0.0).sum(-1, keepdims=True) / count
            waveform = jnp.where(mask, (waveform - mean) / jnp.sqrt(var + self.epsilon), 0.0)
        out = self.speech_encoder(waveform, mask.astype(jnp.int32), output_hidden_states=True)
        if self.layer == "weighted":
            weights = jax.nn.softmax(self.layer_weights[...]).astype(out.hidden_states[0].dtype)
            states = sum(w * h for w, h in zip(weights, out.hidden_states))
        else:
            states = out.hidden_states[self.layer]
        return states, out.hidden_states_mask


def build_speech_branch(audio, *, dtype: str, frozen: bool, rngs: nnx.Rngs,
                        encoder: SpeechEncoder | Emotion2vecEncoder | None = None) -> SpeechBranch:
    """The checkpoint ``audio.encoder`` (folder or hub id) in our Flax port, computing in `dtype`; a frozen
    encoder runs without dropout or LayerDrop and with its batch norms' running averages, as a fixed
    feature extractor. `encoder`, if given, replaces the checkpoint's weights (an exported model's
    encoder, built from the configs in ``audio.encoder``)."""
    if encoder is None:
        encoder, _ = from_pretrained(audio.encoder, dtype=jnp.dtype(dtype), rngs=rngs, dropout=not frozen)
    if frozen:  # batch norms (HuBERT's positional one) keep their running averages in training too
        for _, module in nnx.iter_modules(encoder):
            if isinstance(module, MaskedBatchNorm):
                module.frozen = True
    preprocessor = load_preprocessor(audio.encoder)
    if preprocessor.sampling_rate != SAMPLE_RATE:
        raise ValueError(f"audio.encoder = {audio.encoder!r} expects {preprocessor.sampling_rate} Hz audio; mer_jax "
                         f"decodes every corpus at {SAMPLE_RATE} Hz")
    layer = audio.layer
    if layer != "weighted":
        try:
            layer = int(layer)
        except ValueError:
            raise ValueError(f"audio.layer = {layer!r}: 'weighted' or a hidden-state index") from None
    return SpeechBranch(encoder, normalize=preprocessor.do_normalize, layer=layer, epsilon=preprocessor.epsilon)
