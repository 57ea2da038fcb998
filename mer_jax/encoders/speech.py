"""Pieces shared by the self-supervised speech encoders of the wav2vec2 family (wav2vec2, HuBERT,
data2vec-audio; WavLM reuses them), ported from Hugging Face transformers' PyTorch modules.

    waveform (B, T) -> conv feature extractor (strided 1-D convs, one frame per 20 ms at 16 kHz)
      -> feature projection (LayerNorm, Linear, dropout) -> padded frames zeroed
      -> + convolutional positional embedding -> Transformer layers
      (-> with `add_adapter`, strided conv + GLU layers that shorten the sequence)

The Transformer comes in two orders: post-LayerNorm ("base", `do_stable_layer_norm=False`: LayerNorm
after the positional embedding and after each residual) and pre-LayerNorm ("stable layer norm":
LayerNorm before each block and once after the last layer); pre-norm layers may end with MMS's small
bottleneck adapter (`adapter_attn_dim`). The positional convolution is weight-normed, or, in HuBERT
with `conv_pos_batch_norm`, a plain convolution after a batch norm. Module and parameter names mirror
Hugging Face's, so a Flax path is its checkpoint name.

Padded batches: `attention_mask` (B, T) marks real samples; a real frame is one whose receptive field
lies in the real samples (its count from the conv kernels and strides, as transformers'
`_get_feat_extract_output_lengths`); padded frames are zeroed before the positional convolution and
masked as attention keys. Values at padded frames of the outputs are unspecified. The adapter's
frames are counted as transformers counts them (`(n - 1) // adapter_stride + 1` per layer).

Departures from transformers:
- SpecAugment masking (`mask_time_prob`, `masked_spec_embed`) is not part of the encoder; the
  checkpoint's `masked_spec_embed` is ignored on loading.
- An utterance shorter than the receptive field has no real frame (transformers' mask then marks
  every frame real).
- LayerDrop (training only) computes a skipped layer and discards its output, so `hidden_states`
  repeats the layer's input where transformers' list is shorter. The adapter's layers are never
  dropped (a dropped layer would change the output's length at random).
- The positional batch norm's training statistics come from the real frames only (transformers
  counts the zeroed padded frames too); evaluation uses the running averages in both.
- `WaveformPreprocessor` normalises over the real samples even for checkpoints whose feature
  extractor returns no attention mask (transformers then normalises the padded array as a whole,
  which makes an utterance depend on its batch-mates).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from mer_jax.encoders.layers import Builder, activation, run_layers
from mer_jax.layers import grouped_conv
from mer_jax.layers.attention import dot_product_attention
from mer_jax.layers.batch_norm import MaskedBatchNorm

# torch.nn.LayerNorm / GroupNorm's default epsilon, used by the conv feature extractor's norms.
TORCH_NORM_EPS = 1e-5
# torch.nn.init.kaiming_normal_, transformers' init of the convolutions.
HE_NORMAL = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def same_padding(kernel_size: int) -> tuple[int, int]:
    """Padding that keeps the length of a stride-1 convolution; for an even kernel, transformers pads
    kernel // 2 on both sides and drops the last output (`*SamePadLayer`), i.e. pads one less on the right."""
    return kernel_size // 2, (kernel_size - 1) // 2


@dataclasses.dataclass(frozen=True)
class SpeechConfig:
    """Fields of `Wav2Vec2Config`, `HubertConfig` and `Data2VecAudioConfig` that shape the encoder.

    Fields with defaults exist in only some families: data2vec-audio configs lack `feat_extract_norm`
    and `do_stable_layer_norm` (its conv layers are always layer-normed and its Transformer post-norm),
    only HuBERT has `feat_proj_layer_norm` and `conv_pos_batch_norm`, only data2vec-audio
    `conv_pos_kernel_size`; HuBERT has no `add_adapter` (nor `adapter_*`), and only wav2vec2's and
    HuBERT's pre-norm layers read `adapter_attn_dim`.
    """

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str
    hidden_dropout: float
    activation_dropout: float
    attention_dropout: float
    feat_proj_dropout: float
    layerdrop: float
    layer_norm_eps: float
    initializer_range: float
    feat_extract_activation: str
    conv_dim: tuple[int, ...]
    conv_stride: tuple[int, ...]
    conv_kernel: tuple[int, ...]
    conv_bias: bool
    num_conv_pos_embeddings: int
    num_conv_pos_embedding_groups: int
    feat_extract_norm: str = "layer"
    do_stable_layer_norm: bool = False
    feat_proj_layer_norm: bool = True
    conv_pos_kernel_size: int = 19
    conv_pos_batch_norm: bool = False
    add_adapter: bool = False
    output_hidden_size: int | None = None  # the adapter's width; None: hidden_size
    adapter_kernel_size: int = 3
    adapter_stride: int = 2
    num_adapter_layers: int = 3
    adapter_attn_dim: int | None = None

    @classmethod
    def from_hf(cls, config) -> "SpeechConfig":
        """Build from a transformers `PretrainedConfig` or a `config.json` dict; unknown keys are ignored."""
        values = config if isinstance(config, dict) else config.to_dict()
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}")
        if not len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride):
            raise ValueError(f"conv_dim {self.conv_dim}, conv_kernel {self.conv_kernel} and conv_stride "
                             f"{self.conv_stride} must have one entry per conv layer")
        if self.feat_extract_norm not in ("group", "layer"):
            raise ValueError(f"feat_extract_norm is {self.feat_extract_norm!r}; known: 'group', 'layer'")
        activation(self.hidden_act)
        activation(self.feat_extract_activation)

    @property
    def adapter_width(self) -> int:
        return self.output_hidden_size or self.hidden_size

    def frame_lengths(self, num_samples):
        """Frames the conv feature extractor makes of `num_samples` (an int or an integer array): the
        Transformer's frames."""
        for kernel, stride in zip(self.conv_kernel, self.conv_stride, strict=True):
            num_samples = (num_samples - kernel) // stride + 1
        return num_samples

    def output_lengths(self, num_samples):
        """Frames of the encoder's output: the Transformer's, shortened by the adapter's layers if it has one."""
        frames = self.frame_lengths(num_samples)
        for _ in range(self.num_adapter_layers if self.add_adapter else 0):
            frames = (frames - 1) // self.adapter_stride + 1
        return frames


class SpeechBuilder(Builder):
    """`Builder` plus the convolutions and the differently sized norms of the speech encoders."""

    def layer_norm(self, features: int, *, epsilon: float = TORCH_NORM_EPS, affine: bool = True) -> nnx.LayerNorm:
        return nnx.LayerNorm(features, epsilon=epsilon, use_bias=affine, use_scale=affine, dtype=self.dtype,
                             rngs=self.rngs)

    def conv(self, features_in: int, features_out: int, kernel_size: int, *, stride: int = 1, same: bool = False,
             padding: int = 0, groups: int = 1, use_bias: bool = True) -> nnx.Conv:
        """A Conv1d on (B, L, C), padded by `padding` on both sides or, with `same`, by `same_padding`."""
        padding = [same_padding(kernel_size) if same else (padding, padding)]
        return nnx.Conv(features_in, features_out, kernel_size, stride, padding=padding, feature_group_count=groups,
                        use_bias=use_bias, dtype=self.dtype, kernel_init=HE_NORMAL, rngs=self.rngs,
                        conv_general_dilated=grouped_conv.conv_general_dilated)


class ConvLayer(nnx.Module):
    """One feature-extractor layer: strided conv, optional norm over time per channel (`"group"`) or
    over channels per frame (`"layer"`), activation (transformers' `*NoLayerNorm/GroupNorm/LayerNormConvLayer`)."""

    def __init__(self, b: SpeechBuilder, index: int, norm: str | None):
        c: SpeechConfig = b.config
        features = c.conv_dim[index]
        self.conv = b.conv(c.conv_dim[index - 1] if index else 1, features, c.conv_kernel[index],
                           stride=c.conv_stride[index], use_bias=c.conv_bias)
        if norm == "group":
            self.layer_norm = nnx.GroupNorm(features, num_groups=features, epsilon=TORCH_NORM_EPS, dtype=b.dtype,
                                            rngs=b.rngs)
        else:
            self.layer_norm = b.layer_norm(features) if norm == "layer" else None
        self.activation = activation(c.feat_extract_activation)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv(x)
        return self.activation(x if self.layer_norm is None else self.layer_norm(x))


class FeatureEncoder(nnx.Module):
    """The conv stack from waveform (B, T) to frames (B, F, conv_dim[-1]): GroupNorm on the first layer
    only (`feat_extract_norm="group"`) or LayerNorm on every layer (`"layer"`)."""

    def __init__(self, b: SpeechBuilder):
        c: SpeechConfig = b.config
        n = len(c.conv_dim)
        norms = ["group"] + [None] * (n - 1) if c.feat_extract_norm == "group" else ["layer"] * n
        self.conv_layers = nnx.List([ConvLayer(b, i, norm) for i, norm in enumerate(norms)])

    def __call__(self, waveform: jax.Array) -> jax.Array:
        x = waveform[..., None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nnx.Module):
    """(LayerNorm,) Linear to the hidden size, dropout; HuBERT may go without the LayerNorm."""

    def __init__(self, b: SpeechBuilder):
        c: SpeechConfig = b.config
        self.layer_norm = b.layer_norm(c.conv_dim[-1], epsilon=c.layer_norm_eps) if c.feat_proj_layer_norm else None
        self.projection = b.dense(c.conv_dim[-1], c.hidden_size)
        self.dropout = b.dropout(c.feat_proj_dropout)

    def __call__(self, features: jax.Array) -> jax.Array:
        if self.layer_norm is not None:
            features = self.layer_norm(features)
        return self.dropout(self.projection(features))


class WeightNormConv1d(nnx.Module):
    """A grouped "same" Conv1d whose kernel is `torch.nn.utils.weight_norm(conv, dim=2)`'s:
    w = g * v / ||v||, the norm over the output and input axes for each kernel tap.

    `weight_g` (1, 1, K) and `weight_v` (out, in / groups, K) are the trained parameters, in PyTorch's
    layout (the checkpoint's `parametrizations.weight.original0/1`, or the older `weight_g/weight_v`).
    """

    def __init__(self, features: int, kernel_size: int, groups: int, *, dtype, rngs: nnx.Rngs):
        std = 2 * math.sqrt(1 / (kernel_size * features))  # transformers' init of the unnormalised weight
        v = std * jax.random.normal(rngs.params(), (features, features // groups, kernel_size))
        self.weight_v = nnx.Param(v)
        self.weight_g = nnx.Param(self.norm(v))
        self.bias = nnx.Param(jnp.zeros(features))
        self.groups, self.dtype = groups, dtype
        self.padding = same_padding(kernel_size)

    @staticmethod
    def norm(v: jax.Array) -> jax.Array:
        return jnp.sqrt(jnp.sum(jnp.square(v), axis=(0, 1), keepdims=True))

    def __call__(self, x: jax.Array) -> jax.Array:
        v = self.weight_v[...]
        kernel = (self.weight_g[...] * v / self.norm(v)).transpose(2, 1, 0)  # (K, in / groups, out)
        y = grouped_conv.conv_general_dilated(x.astype(self.dtype), kernel.astype(self.dtype), (1,), [self.padding],
                                              dimension_numbers=("NWC", "WIO", "NWC"), feature_group_count=self.groups)
        return y + self.bias[...].astype(self.dtype)


class PositionalConvEmbedding(nnx.Module):
    """act(weight-normed grouped conv(x)) with kernel `num_conv_pos_embeddings`: wav2vec2's and HuBERT's
    (and WavLM's) relative positional information, added to the frames; with `conv_pos_batch_norm`
    (HuBERT), act(conv(batch norm(x))) with a plain convolution."""

    def __init__(self, b: SpeechBuilder):
        c: SpeechConfig = b.config
        kernel, groups = c.num_conv_pos_embeddings, c.num_conv_pos_embedding_groups
        if c.conv_pos_batch_norm:
            self.batch_norm = MaskedBatchNorm(c.hidden_size)
            self.conv = b.conv(c.hidden_size, c.hidden_size, kernel, same=True, groups=groups)
        else:
            self.batch_norm = None
            self.conv = WeightNormConv1d(c.hidden_size, kernel, groups, dtype=b.dtype, rngs=b.rngs)
        self.activation = activation(c.feat_extract_activation)

    def __call__(self, x: jax.Array, frame_mask: jax.Array) -> jax.Array:
        if self.batch_norm is not None:
            x = self.batch_norm(x, frame_mask)
        return self.activation(self.conv(x))


class Attention(nnx.Module):
    """Multi-head self-attention over the real frames, q/k/v/out projections with biases.

    `logit_bias(x, **context)` adds (B, heads, Lq, Lk) float32 logits, zero here: the hook for WavLM's
    gated relative position bias.
    """

    def __init__(self, b: SpeechBuilder):
        c: SpeechConfig = b.config
        self.num_heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (b.dense(c.hidden_size, c.hidden_size)
                                                                for _ in range(4))
        self.attention_dropout = b.dropout(c.attention_dropout)

    def logit_bias(self, x: jax.Array, **context) -> jax.Array | float:
        del x, context
        return 0.0

    def __call__(self, x: jax.Array, key_mask: jax.Array, **context) -> jax.Array:
        q, k, v = (proj(x).reshape(*x.shape[:-1], self.num_heads, self.head_dim)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        out, _ = dot_product_attention(q, k, v, key_mask, scale=self.head_dim ** -0.5,
                                       bias=self.logit_bias(x, **context), dropout=self.attention_dropout)
        return self.out_proj(out.reshape(x.shape))


class FeedForward(nnx.Module):
    """dense -> act -> dropout(activation_dropout) -> dense -> dropout(hidden_dropout), no residual."""

    def __init__(self, b: SpeechBuilder):
        c: SpeechConfig = b.config
        self.intermediate_dense = b.dense(c.hidden_size, c.intermediate_size)
        self.act = activation(c.hidden_act)
        self.intermediate_dropout = b.dropout(c.activation_dropout)
        self.output_dense = b.dense(c.intermediate_size, c.hidden_size)
        self.output_dropout = b.dropout(c.hidden_dropout)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.output_dropout(self.output_dense(self.intermediate_dropout(self.act(self.intermediate_dense(x)))))


class AttentionAdapter(nnx.Module):
    """MMS's per-layer bottleneck (transformers' `*AttnAdapterLayer`): LayerNorm, dense to
    `adapter_attn_dim`, ReLU, dense back; its output is added after the feed-forward block."""

    def __init__(self, b: SpeechBuilder):
        c: SpeechConfig = b.config
        self.norm = b.layer_norm(c.hidden_size)
        self.linear_1 = b.dense(c.hidden_size, c.adapter_attn_dim)
        self.linear_2 = b.dense(c.adapter_attn_dim, c.hidden_size)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.linear_2(jax.nn.relu(self.linear_1(self.norm(x))))


class EncoderLayer(nnx.Module):
    """Attention and feed-forward blocks with residuals: LayerNorm after each residual (post-norm) or
    before each block (pre-norm, `stable`, optionally followed by an `AttentionAdapter`)."""

    def __init__(self, b: SpeechBuilder, attention: Attention, *, stable: bool, adapter: bool = False):
        self.attention = attention
        self.dropout = b.dropout(b.config.hidden_dropout)
        self.layer_norm = b.norm()
        self.feed_forward = FeedForward(b)
        self.final_layer_norm = b.norm()
        self.adapter_layer = AttentionAdapter(b) if stable and adapter else None
        self.stable = stable

    def __call__(self, x: jax.Array, key_mask: jax.Array, **context) -> jax.Array:
        if self.stable:
            x = x + self.dropout(self.attention(self.layer_norm(x), key_mask, **context))
            x = x + self.feed_forward(self.final_layer_norm(x))
            return x if self.adapter_layer is None else x + self.adapter_layer(x)
        x = self.layer_norm(x + self.dropout(self.attention(x, key_mask, **context)))
        return self.final_layer_norm(x + self.feed_forward(x))


class TransformerEncoder(nnx.Module):
    """Zero the padded frames, add the positional embedding, run the layers (transformers' `*Encoder`
    and `*EncoderStableLayerNorm`); returns the final states and the hidden states as transformers
    lists them: the first layer's input, then each layer's output (pre-norm: before the final LayerNorm)."""

    def __init__(self, b: SpeechBuilder, pos_conv_embed: nnx.Module, layers: list[EncoderLayer], *, stable: bool,
                 keep_first: bool = False):
        c: SpeechConfig = b.config
        self.pos_conv_embed = pos_conv_embed
        self.layer_norm = b.norm()
        self.dropout = b.dropout(c.hidden_dropout)
        self.layers = nnx.List(layers)
        # A dropout of ones is a coin per layer on the dropout stream: 0 with probability `layerdrop` in
        # training, never in eval; a layer whose coin is 0 is skipped (the first one never with `keep_first`).
        self.layerdrop = b.dropout(c.layerdrop)
        self.stable, self.keep_first = stable, keep_first

    def __call__(self, x: jax.Array, frame_mask: jax.Array, **context) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        x = jnp.where(frame_mask[..., None], x, 0)
        x = x + self.pos_conv_embed(x, frame_mask)
        x = self.dropout(x if self.stable else self.layer_norm(x))
        keep = self.layerdrop(jnp.ones(len(self.layers))) > 0
        if self.keep_first:
            keep = keep.at[0].set(True)

        def call(layer, x, kept):
            return jnp.where(kept, layer(x, frame_mask, **context), x)

        y, layer_outputs = run_layers(self.layers, x, call, keep)
        return (self.layer_norm(y) if self.stable else y), (x, *layer_outputs)


class Adapter(nnx.Module):
    """`add_adapter`: the Transformer's output, down-projected and layer-normed when `output_hidden_size`
    differs from the hidden size, through `num_adapter_layers` convolutions (kernel `adapter_kernel_size`,
    stride `adapter_stride`, padding 1) each followed by a GLU (transformers' `*Adapter`)."""

    def __init__(self, b: SpeechBuilder):
        c: SpeechConfig = b.config
        width = c.adapter_width
        if width != c.hidden_size:
            self.proj = b.dense(c.hidden_size, width)
            self.proj_layer_norm = b.layer_norm(width)
        else:
            self.proj = self.proj_layer_norm = None
        self.layers = nnx.List([AdapterLayer(b) for _ in range(c.num_adapter_layers)])

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.proj is not None:
            x = self.proj_layer_norm(self.proj(x))
        for layer in self.layers:
            x = layer(x)
        return x


class AdapterLayer(nnx.Module):
    def __init__(self, b: SpeechBuilder):
        c: SpeechConfig = b.config
        self.conv = b.conv(c.adapter_width, 2 * c.adapter_width, c.adapter_kernel_size, stride=c.adapter_stride,
                           padding=1)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.glu(self.conv(x), axis=-1)


@struct.dataclass
class SpeechEncoderOutput:
    """What a speech encoder returns.

    last_hidden_state: (B, F', H') final states, after the adapter if the encoder has one (F' <= F,
        H' = `output_hidden_size`); values at padded frames are unspecified.
    frame_mask: (B, F') True at the real frames of last_hidden_state.
    hidden_states: with output_hidden_states, the first layer's input followed by each layer's output
        (num_hidden_layers + 1 arrays of (B, F, H)), as transformers returns them; in the pre-norm order
        the last one is before the final LayerNorm, so it differs from last_hidden_state.
    hidden_states_mask: (B, F) True at the real frames of the hidden states (frame_mask without an adapter).
    """

    last_hidden_state: jax.Array
    frame_mask: jax.Array
    hidden_states: tuple[jax.Array, ...] | None = None
    hidden_states_mask: jax.Array | None = None


class SpeechEncoder(nnx.Module):
    """A wav2vec2-family model; call as `encoder(input_values, attention_mask)` on (B, T) waveforms.

    Subclasses name the family (`model_type`, `base_model_prefix`) and may replace the positional
    embedding (`positional_embedding`) or a layer's attention (`attention`, given the layer's index:
    WavLM's first layer holds the relative position table), give every attention extra keyword
    arguments (`attention_context`: WavLM's position bias, computed once for all layers),
    exempt the first layer from LayerDrop (`keep_first_layer`), and go without MMS's per-layer
    adapters (`attention_adapters`: WavLM's layers have none) or the output adapter (`output_adapter`:
    HuBERT has none).
    """

    model_type: str
    base_model_prefix: str
    checkpoint_rules = ((r"(.+)", r"\1"),)  # module paths are Hugging Face's
    # SpecAugment's mask vector and the task / pre-training heads beside the base model.
    ignored_checkpoint_keys = (r"^masked_spec_embed$", r"^lm_head\.", r"^projector\.", r"^classifier\.",
                               r"^layer_weights$", r"^quantizer\.", r"^project_(hid|q)\.", r"^tdnn\.",
                               r"^feature_extractor\.(weight|bias)$", r"^objective\.")
    keep_first_layer = False
    attention_adapters = True
    output_adapter = True

    def __init__(self, config: SpeechConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        b = SpeechBuilder(config, dtype, rngs)
        self.config = config
        self.hidden_size = config.hidden_size
        self.feature_extractor = FeatureEncoder(b)
        self.feature_projection = FeatureProjection(b)
        stable, adapters = config.do_stable_layer_norm, bool(config.adapter_attn_dim) and self.attention_adapters
        self.encoder = TransformerEncoder(
            b, self.positional_embedding(b),
            [EncoderLayer(b, self.attention(b, i), stable=stable, adapter=adapters)
             for i in range(config.num_hidden_layers)],
            stable=stable, keep_first=self.keep_first_layer)
        self.adapter = Adapter(b) if config.add_adapter and self.output_adapter else None

    def positional_embedding(self, b: SpeechBuilder) -> nnx.Module:
        return PositionalConvEmbedding(b)

    def attention(self, b: SpeechBuilder, index: int) -> Attention:
        del index
        return Attention(b)

    def attention_context(self, num_frames: int) -> dict:
        """Keyword arguments every layer's attention receives for `num_frames` frames (none here)."""
        del num_frames
        return {}

    def __call__(self, input_values: jax.Array, attention_mask: jax.Array | None = None,
                 output_hidden_states: bool = False) -> SpeechEncoderOutput:
        samples = None if attention_mask is None else attention_mask.astype(jnp.int32).sum(-1)

        def real(frames: jax.Array, lengths) -> jax.Array:
            """(B, F) real frames of right-padded waveforms of `samples` real samples, F = frames.shape[1]."""
            if samples is None:
                return jnp.ones(frames.shape[:2], bool)
            return jnp.arange(frames.shape[1])[None] < lengths(samples)[:, None]

        features = self.feature_extractor(input_values)
        mask = real(features, self.config.frame_lengths)
        x, hidden_states = self.encoder(self.feature_projection(features), mask,
                                        **self.attention_context(features.shape[1]))
        output_mask = mask
        if self.adapter is not None:
            x = self.adapter(x)
            output_mask = real(x, self.config.output_lengths)
        return SpeechEncoderOutput(x, output_mask, hidden_states if output_hidden_states else None, mask)


@dataclasses.dataclass(frozen=True)
class WaveformPreprocessor:
    """transformers' `Wav2Vec2FeatureExtractor` (a checkpoint's `preprocessor_config.json`) on raw waveforms:
    right-padding with `padding_value`, the real-sample mask, and with `do_normalize` each utterance
    scaled to zero mean and unit variance over its real samples: (w - mean) / sqrt(var + `epsilon`)."""

    sampling_rate: int = 16000
    do_normalize: bool = True
    padding_value: float = 0.0
    epsilon: float = 1e-7

    @classmethod
    def from_folder(cls, folder: str | Path) -> "WaveformPreprocessor":
        file = Path(folder) / "preprocessor_config.json"
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found: a speech checkpoint folder needs its feature extractor settings")
        values = json.loads(file.read_text())
        kind = values.get("feature_extractor_type", "Wav2Vec2FeatureExtractor")
        if kind != "Wav2Vec2FeatureExtractor" or values.get("feature_size", 1) != 1:
            raise ValueError(f"{file}: {kind} with feature_size {values.get('feature_size')} is not supported; "
                             "only Wav2Vec2FeatureExtractor on mono waveforms (feature_size 1)")
        names = {f.name for f in dataclasses.fields(cls)} - {"epsilon"}
        return cls(**{k: v for k, v in values.items() if k in names})

    def __call__(self, waveforms, sampling_rate: int, length: int | None = None) -> dict[str, np.ndarray]:
        """A list of 1-D waveforms sampled at `sampling_rate` -> `input_values` (B, T) float32 and
        `attention_mask` (B, T) int32, T the longest waveform or `length`."""
        if sampling_rate != self.sampling_rate:
            raise ValueError(f"waveforms sampled at {sampling_rate} Hz, but this encoder expects "
                             f"{self.sampling_rate} Hz: resample them first")
        waveforms = [np.asarray(w, np.float32) for w in waveforms]
        for i, w in enumerate(waveforms):
            if w.ndim != 1 or not w.size:
                raise ValueError(f"waveform {i} has shape {w.shape}; expected a non-empty mono waveform (1-D)")
        longest = max(len(w) for w in waveforms)
        length = longest if length is None else length
        if longest > length:
            raise ValueError(f"a waveform has {longest} samples, more than length={length}")
        values = np.full((len(waveforms), length), self.padding_value, np.float32)
        mask = np.zeros((len(waveforms), length), np.int32)
        for row, w in enumerate(waveforms):
            values[row, :len(w)] = (w - w.mean()) / np.sqrt(w.var() + self.epsilon) if self.do_normalize else w
            mask[row, :len(w)] = 1
        return {"input_values": values, "attention_mask": mask}
