"""wav2vec2, HuBERT and data2vec-audio (Hugging Face `Wav2Vec2Model`, `HubertModel`,
`Data2VecAudioModel`): facebook/wav2vec2-*, facebook/hubert-*, facebook/data2vec-audio-* and their
fine-tuned descendants.

The three share the architecture in speech.py. wav2vec2 and HuBERT come in both Transformer orders
(group-norm "base" and layer-norm "stable layer norm" checkpoints); HuBERT may drop the feature
projection's LayerNorm (`feat_proj_layer_norm`). data2vec-audio always layer-normalises its conv
layers, is post-norm, and replaces the weight-normed positional convolution by a stack of
`num_conv_pos_embeddings` plain convolutions (kernel `conv_pos_kernel_size`) each followed by a
parameter-free LayerNorm. Departures from transformers are listed in speech.py.
"""

from __future__ import annotations

import jax
from flax import nnx

from mer_jax.encoders.layers import activation
from mer_jax.encoders.speech import SpeechBuilder, SpeechEncoder


class Wav2Vec2Encoder(SpeechEncoder):
    """Wav2Vec2Model in Flax NNX."""

    model_type = "wav2vec2"
    base_model_prefix = "wav2vec2"


class HubertEncoder(SpeechEncoder):
    """HubertModel in Flax NNX."""

    model_type = "hubert"
    base_model_prefix = "hubert"
    output_adapter = False  # HubertModel has no `add_adapter`


class Data2VecAudioPositionalConvLayer(nnx.Module):
    """act(LayerNorm(grouped "same" conv(x))), the LayerNorm without scale and bias."""

    def __init__(self, b: SpeechBuilder):
        c = b.config
        self.conv = b.conv(c.hidden_size, c.hidden_size, c.conv_pos_kernel_size, same=True,
                           groups=c.num_conv_pos_embedding_groups)
        self.layer_norm = b.layer_norm(c.hidden_size, affine=False)
        self.activation = activation(c.feat_extract_activation)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.activation(self.layer_norm(self.conv(x)))


class Data2VecAudioPositionalConvEmbedding(nnx.Module):
    """`num_conv_pos_embeddings` positional conv layers in sequence."""

    def __init__(self, b: SpeechBuilder):
        self.layers = nnx.List([Data2VecAudioPositionalConvLayer(b) for _ in range(b.config.num_conv_pos_embeddings)])

    def __call__(self, x: jax.Array, frame_mask: jax.Array) -> jax.Array:
        del frame_mask  # the padded frames are zero already
        for layer in self.layers:
            x = layer(x)
        return x


class Data2VecAudioEncoder(SpeechEncoder):
    """Data2VecAudioModel in Flax NNX."""

    model_type = "data2vec-audio"
    base_model_prefix = "data2vec_audio"

    def positional_embedding(self, b: SpeechBuilder) -> nnx.Module:
        return Data2VecAudioPositionalConvEmbedding(b)
