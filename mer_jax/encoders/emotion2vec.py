"""emotion2vec (Ma et al., 2023, arXiv:2312.15185) in Flax NNX: the data2vec 2.0 audio model that
FunASR ships as `Emotion2vec` (emotion2vec_base, emotion2vec_plus_*), whose utterance embedding, the
mean of its final frame states, is LPGNet's audio feature.

    waveform (B, T) -> standardised over each utterance's real samples (`normalize`, epsilon 1e-5)
      -> conv feature extractor (wav2vec2's, without conv biases) -> LayerNorm, Linear
      -> x + positional convolutions (`conv_pos_depth` grouped "same" convs, each then a LayerNorm
         without parameters and GELU; with `conv_pos_pre_ln` a LayerNorm first)
      -> extra tokens prepended -> prenet: the modality's context encoder (post-norm: LayerNorm first),
         `prenet_depth` blocks -> `depth` blocks -> (pre-norm: a final LayerNorm) -> extra tokens dropped

Every block's attention adds ALiBi (`use_alibi`): head h's logit for query i and key j gets
-slope_h |i - j| times a learned scale (per layer and head, clamped at zero); extra tokens get none.
A checkpoint is a FunASR folder: `config.yaml` (its `model_conf`) and `model.pt` (a state dict,
possibly under `model`, `state_dict` or `model_state_dict`), or the files its `configuration.json` names; the pre-training decoder, the EMA
teacher and the emotion classifier head of the plus models (`proj`) are ignored on loading.

Departures from FunASR:
- Padded batches: the real frames of a padded utterance get exactly the states FunASR computes for
  the utterance alone (its `inference` runs one utterance at a time): the waveform is standardised
  over its real samples, and padded frames are zeroed before each positional convolution, as the
  convolution's own zero padding does at the end of an unpadded utterance, and masked as keys.
  With `extractor_mode: default` (a GroupNorm over time in the first conv layer) the padded samples
  still reach the real frames, as in wav2vec2-base.
- `hidden_states` are the blocks' outputs (transformers' convention), not the data2vec targets
  FunASR's `layer_results` holds (the feed-forward outputs before the residual).
- Learned ALiBi tables (`learned_alibi`) are not supported; the loader refuses such configs.
Fine-tuning follows the reference: ALiBi scales train only with `learned_alibi_scale`, and the conv
feature extractor's gradient is scaled by `local_grad_mult`.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import operator
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mer_jax.encoders.checkpoint import read_torch_file
from mer_jax.encoders.layers import run_layers
from mer_jax.encoders.speech import (FeatureEncoder, SpeechBuilder, SpeechConfig,
                                     SpeechEncoderOutput, WaveformPreprocessor)
from mer_jax.encoders.wav2vec2 import Data2VecAudioPositionalConvLayer
from mer_jax.layers.attention import dot_product_attention

FUNASR_CONFIG = "config.yaml"
FUNASR_WEIGHTS = "model.pt"
FUNASR_METAS = "configuration.json"  # a ModelScope / hub folder's list of its files
MODEL_CLASS = "Emotion2vec"
SAMPLE_RATE = 16000
# F.layer_norm's default epsilon, with which FunASR standardises the waveform.
NORMALIZE_EPS = 1e-5


@dataclasses.dataclass(frozen=True)
class Emotion2vecConfig(SpeechConfig):
    """A FunASR `model_conf` in SpeechConfig's terms (`hidden_size` = embed_dim, `num_hidden_layers` =
    depth, `do_stable_layer_norm` = layer_norm_first, `hidden_dropout` = encoder_dropout, ...) plus
    what data2vec 2.0 adds. Build it with `from_model_conf`."""

    norm_affine: bool = True
    post_mlp_dropout: float = 0.0
    input_dropout: float = 0.0
    drop_path_start: float = 0.0
    drop_path_end: float = 0.0
    prenet_depth: int = 4
    prenet_dropout: float = 0.0
    prenet_layerdrop: float = 0.0
    prenet_drop_path_start: float = 0.0
    prenet_drop_path_end: float = 0.0
    conv_pos_pre_ln: bool = False
    num_extra_tokens: int = 0
    use_alibi: bool = False
    num_alibi_heads: int = 12
    alibi_scale_per_layer: bool = False
    alibi_scale_per_head: bool = False
    alibi_scale_init: float = 1.0
    alibi_scale_learned: bool = True
    local_grad_mult: float = 1.0  # the conv feature extractor's gradient is scaled by this (0: not trained)
    model_depth: int = 8
    normalize: bool = True

    @classmethod
    def from_model_conf(cls, conf: dict, source: str = "model_conf") -> "Emotion2vecConfig":
        """From FunASR's `model_conf` (a dict of config.yaml); `source` names it in errors. A missing flag
        is false and a missing rate zero, as FunASR reads them; a missing size is an error."""
        audio = (conf.get("modalities") or {}).get("audio")
        if not isinstance(audio, dict):
            raise ValueError(f"{source}: no modalities.audio section (not an emotion2vec audio model?)")

        def need(section: dict, key: str):
            if section.get(key) is None:
                where = "modalities.audio." if section is audio else ""
                raise ValueError(f"{source}: {where}{key} is missing")
            return section[key]

        def rate(section: dict, key: str) -> float:
            return float(section.get(key) or 0)

        def interpolated(key: str, fallback: int) -> int:
            """Hydra's `${model.num_heads}`-style defaults resolve to the model's own value."""
            value = audio.get(key)
            return fallback if value is None or isinstance(value, str) else value

        if audio.get("learned_alibi"):
            raise ValueError(f"{source}: learned ALiBi tables (modalities.audio.learned_alibi) are not supported")
        layers = feature_encoder_spec(need(audio, "feature_encoder_spec"), source)
        if need(audio, "extractor_mode") not in ("layer_norm", "default"):
            raise ValueError(f"{source}: modalities.audio.extractor_mode is {audio['extractor_mode']!r}; "
                             "known: 'layer_norm', 'default'")
        dim, depth, heads = need(conf, "embed_dim"), need(conf, "depth"), need(conf, "num_heads")
        pos_depth = need(audio, "conv_pos_depth")
        return cls(
            hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads,
            intermediate_size=int(dim * need(conf, "mlp_ratio")), hidden_act="gelu",
            hidden_dropout=float(need(conf, "encoder_dropout")),
            activation_dropout=float(need(conf, "activation_dropout")),
            attention_dropout=float(need(conf, "attention_dropout")), feat_proj_dropout=0.0,
            layerdrop=rate(conf, "layerdrop"), layer_norm_eps=float(need(conf, "norm_eps")), initializer_range=0.02,
            feat_extract_activation="gelu", conv_dim=tuple(d for d, _, _ in layers),
            conv_kernel=tuple(k for _, k, _ in layers), conv_stride=tuple(s for _, _, s in layers), conv_bias=False,
            feat_extract_norm="layer" if audio["extractor_mode"] == "layer_norm" else "group",
            do_stable_layer_norm=bool(conf.get("layer_norm_first")),
            num_conv_pos_embeddings=pos_depth, num_conv_pos_embedding_groups=need(audio, "conv_pos_groups"),
            conv_pos_kernel_size=max(3, need(audio, "conv_pos_width") // pos_depth),
            norm_affine=bool(conf.get("norm_affine")), post_mlp_dropout=float(need(conf, "post_mlp_drop")),
            input_dropout=rate(conf, "dropout_input"),
            drop_path_start=rate(conf, "start_drop_path_rate"), drop_path_end=rate(conf, "end_drop_path_rate"),
            prenet_depth=need(audio, "prenet_depth"), prenet_dropout=rate(audio, "prenet_dropout"),
            prenet_layerdrop=rate(audio, "prenet_layerdrop"),
            prenet_drop_path_start=rate(audio, "start_drop_path_rate"),
            prenet_drop_path_end=rate(audio, "end_drop_path_rate"),
            conv_pos_pre_ln=bool(audio.get("conv_pos_pre_ln")), num_extra_tokens=audio.get("num_extra_tokens") or 0,
            use_alibi=bool(audio.get("use_alibi_encoder")), num_alibi_heads=interpolated("num_alibi_heads", heads),
            alibi_scale_per_layer=bool(audio.get("learned_alibi_scale_per_layer")),
            alibi_scale_per_head=bool(audio.get("learned_alibi_scale_per_head")),
            alibi_scale_init=float(audio.get("alibi_scale", 1.0)),
            alibi_scale_learned=bool(audio.get("learned_alibi_scale")),
            local_grad_mult=float(audio.get("local_grad_mult", 1.0)),
            model_depth=interpolated("model_depth", depth), normalize=bool(conf.get("normalize")))

    def __post_init__(self):
        super().__post_init__()
        if self.use_alibi and not 0 < self.num_alibi_heads <= self.num_attention_heads:
            raise ValueError(f"num_alibi_heads {self.num_alibi_heads} must be in [1, num_heads "
                             f"{self.num_attention_heads}]")
        if self.use_alibi and self.alibi_scale_per_layer and self.model_depth < self.num_hidden_layers:
            raise ValueError(f"model_depth {self.model_depth} gives fewer ALiBi scales than the "
                             f"{self.num_hidden_layers} blocks")

    @property
    def alibi_scale_shape(self) -> tuple[int, ...]:
        """FunASR's `alibi_scale` parameter: (layers or 1, 1, heads or 1, 1, 1)."""
        layers = self.prenet_depth + self.model_depth if self.alibi_scale_per_layer else 1
        return layers, 1, self.num_alibi_heads if self.alibi_scale_per_head else 1, 1, 1


_SPEC_OPERATORS = {ast.Add: operator.add, ast.Mult: operator.mul}


def feature_encoder_spec(spec: str, source: str = "feature_encoder_spec") -> list[tuple[int, int, int]]:
    """fairseq's conv spec, a Python expression such as "[(512, 10, 5)] + [(512, 3, 2)] * 4", evaluated
    without `eval`: list and tuple literals of integers joined by + and *."""

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(n) for n in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and type(node.op) in _SPEC_OPERATORS:
            return _SPEC_OPERATORS[type(node.op)](value(node.left), value(node.right))
        raise ValueError

    try:
        layers = value(ast.parse(spec, mode="eval").body)
        if not layers or not all(isinstance(t, tuple) and len(t) == 3 for t in layers):
            raise ValueError
    except (ValueError, SyntaxError, TypeError):
        raise ValueError(f"{source}: feature_encoder_spec {spec!r} is not a list of (dim, kernel, stride) "
                         "tuples") from None
    return layers


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi's per-head slopes (Press et al.): a geometric sequence for a power of two, else those of the
    nearest lower power of two followed by every other slope of the next one."""
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    lower = 2 ** math.floor(math.log2(heads))
    return power_of_2(lower) + alibi_slopes(2 * lower)[0::2][:heads - lower]


class ProjectFeatures(nnx.Module):
    """LayerNorm, Linear from the conv channels to the model width."""

    def __init__(self, b: SpeechBuilder):
        c = b.config
        self.layer_norm = b.layer_norm(c.conv_dim[-1])
        self.dense = b.dense(c.conv_dim[-1], c.hidden_size)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.dense(self.layer_norm(x))


class PositionalEncoder(nnx.Module):
    """(LayerNorm,) `conv_pos_depth` x (grouped "same" conv, LayerNorm without parameters, GELU), padded
    frames zeroed before each convolution."""

    def __init__(self, b: SpeechBuilder):
        c = b.config
        self.pre_norm = b.layer_norm(c.hidden_size) if c.conv_pos_pre_ln else None
        self.layers = nnx.List([Data2VecAudioPositionalConvLayer(b) for _ in range(c.num_conv_pos_embeddings)])

    def __call__(self, x: jax.Array, frame_mask: jax.Array) -> jax.Array:
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        for layer in self.layers:
            x = layer(jnp.where(frame_mask[..., None], x, 0))
        return x


class Mlp(nnx.Module):
    """fc1, GELU, dropout, fc2, dropout (timm's `Mlp`, both dropouts `activation_dropout`)."""

    def __init__(self, b: SpeechBuilder):
        c = b.config
        self.fc1 = b.dense(c.hidden_size, c.intermediate_size)
        self.fc2 = b.dense(c.intermediate_size, c.hidden_size)
        self.drop1, self.drop2 = b.dropout(c.activation_dropout), b.dropout(c.activation_dropout)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.drop2(self.fc2(self.drop1(jax.nn.gelu(self.fc1(x), approximate=False))))


class AltAttention(nnx.Module):
    """Multi-head self-attention with one fused qkv projection, an additive (B|1, heads, L, L) bias
    (ALiBi) and padded keys masked; output projection, dropout `hidden_dropout` (encoder_dropout)."""

    def __init__(self, b: SpeechBuilder):
        c = b.config
        self.num_heads, self.head_dim = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        self.qkv = b.dense(c.hidden_size, 3 * c.hidden_size)
        self.proj = b.dense(c.hidden_size, c.hidden_size)
        self.attn_drop, self.proj_drop = b.dropout(c.attention_dropout), b.dropout(c.hidden_dropout)

    def __call__(self, x: jax.Array, key_mask: jax.Array, bias: jax.Array | float) -> jax.Array:
        qkv = self.qkv(x).reshape(*x.shape[:-1], 3, self.num_heads, self.head_dim)
        out, _ = dot_product_attention(qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :], key_mask,
                                       scale=self.head_dim ** -0.5, bias=bias, dropout=self.attn_drop)
        return self.proj_drop(self.proj(out.reshape(x.shape)))


class AltBlock(nnx.Module):
    """data2vec 2.0's block: post-norm x = norm1(x + attn(x)); x = norm2(x + mlp(x)); or pre-norm
    x = x + attn(norm1(x)), then m = mlp(norm2(x)) and x = m + dropout(m) (the reference's pre-norm
    block keeps no residual around its MLP). A per-sample dropout of the branch (drop path) is the
    reference's stochastic depth."""

    def __init__(self, b: SpeechBuilder, drop_path: float):
        c = b.config
        self.norm1 = b.layer_norm(c.hidden_size, epsilon=c.layer_norm_eps, affine=c.norm_affine)
        self.attn = AltAttention(b)
        self.norm2 = b.layer_norm(c.hidden_size, epsilon=c.layer_norm_eps, affine=c.norm_affine)
        self.mlp = Mlp(b)
        self.post_mlp_dropout = b.dropout(c.post_mlp_dropout)
        self.drop_path = nnx.Dropout(drop_path, broadcast_dims=(1, 2), rngs=b.dropout_rngs)
        self.layer_norm_first = c.do_stable_layer_norm

    def __call__(self, x: jax.Array, key_mask: jax.Array, bias: jax.Array | float) -> jax.Array:
        if self.layer_norm_first:
            x = x + self.drop_path(self.attn(self.norm1(x), key_mask, bias))
            x = self.mlp(self.norm2(x))
            return x + self.drop_path(self.post_mlp_dropout(x))
        x = self.norm1(x + self.drop_path(self.attn(x, key_mask, bias)))
        return self.norm2(x + self.drop_path(self.post_mlp_dropout(self.mlp(x))))


def scale_gradient(x: jax.Array, factor: float) -> jax.Array:
    """x, whose gradient is multiplied by `factor` (fairseq's GradMultiply; 0 stops it)."""
    if factor == 1.0:
        return x
    frozen = jax.lax.stop_gradient(x)
    return frozen if factor == 0 else frozen + factor * (x - frozen)


def drop_path_rates(start: float, end: float, count: int) -> list[float]:
    return [float(r) for r in np.linspace(start, end, count)]


class Blocks(nnx.Module):
    """Blocks in sequence, each with its ALiBi scale and a LayerDrop coin (skipped in training with
    probability `layerdrop`); returns the last output and every block's output."""

    def __init__(self, b: SpeechBuilder, count: int, layerdrop: float, drop_path: tuple[float, float]):
        self.blocks = nnx.List([AltBlock(b, rate) for rate in drop_path_rates(*drop_path, count)])
        self.layerdrop = b.dropout(layerdrop)

    def __call__(self, x: jax.Array, key_mask: jax.Array, alibi: jax.Array | None,
                 scales: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        keep = self.layerdrop(jnp.ones(len(self.blocks))) > 0

        def call(block, x, index):
            bias = 0.0 if alibi is None else alibi * scales[index][:, None, None].astype(alibi.dtype)
            return jnp.where(keep[index], block(x, key_mask, bias), x)

        return run_layers(self.blocks, x, call, jnp.arange(len(self.blocks)))


class ContextEncoder(nnx.Module):
    """The modality's prenet (FunASR's `BlockEncoder`): LayerNorm first in the post-norm model, dropout,
    `prenet_depth` blocks."""

    def __init__(self, b: SpeechBuilder):
        c: Emotion2vecConfig = b.config
        self.norm = None if c.do_stable_layer_norm else b.layer_norm(c.hidden_size, epsilon=c.layer_norm_eps,
                                                                      affine=c.norm_affine)
        self.dropout = b.dropout(c.prenet_dropout)
        self.blocks = Blocks(b, c.prenet_depth, c.prenet_layerdrop, (c.prenet_drop_path_start, c.prenet_drop_path_end))

    def __call__(self, x, key_mask, alibi, scales):
        x = self.dropout(x if self.norm is None else self.norm(x))
        return self.blocks(x, key_mask, alibi, scales)[0]


class AudioEncoder(nnx.Module):
    """FunASR's `modality_encoders.AUDIO`: waveform to the prenet's output, with the extra tokens and the
    ALiBi scales."""

    def __init__(self, b: SpeechBuilder):
        c: Emotion2vecConfig = b.config
        self.local_encoder = FeatureEncoder(b)
        self.project_features = ProjectFeatures(b)
        self.relative_positional_encoder = PositionalEncoder(b)
        self.context_encoder = ContextEncoder(b)
        shape = (1, c.num_extra_tokens, c.hidden_size)
        self.extra_tokens = nnx.Param(0.02 * jax.random.normal(b.rngs.params(), shape)) if c.num_extra_tokens else None
        self.alibi_scale = nnx.Param(jnp.full(c.alibi_scale_shape, c.alibi_scale_init)) if c.use_alibi else None


class Emotion2vecEncoder(nnx.Module):
    """emotion2vec in Flax NNX; call as `encoder(input_values, attention_mask)` on (B, T) waveforms,
    standardised as `WaveformPreprocessor` does (`load_preprocessor` gives the checkpoint's).

    Returns a `SpeechEncoderOutput` (as the wav2vec2 family's): the final frame states without the extra
    tokens, their mask, and with `output_hidden_states` the main blocks' input and each block's output.
    """

    base_model_prefix = "module"  # FunASR strips the prefix DistributedDataParallel adds
    ignored_checkpoint_keys = (r"^modality_encoders\.AUDIO\.decoder\.", r"^_ema\.", r"^ema\.", r"^proj\.")

    def __init__(self, config: Emotion2vecConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        b = SpeechBuilder(config, dtype, rngs)
        self.config, self.hidden_size = config, config.hidden_size
        self.audio_encoder = AudioEncoder(b)
        self.input_dropout = b.dropout(config.input_dropout)
        self.blocks = Blocks(b, config.num_hidden_layers, config.layerdrop,
                             (config.drop_path_start, config.drop_path_end))
        self.norm = (b.layer_norm(config.hidden_size, epsilon=config.layer_norm_eps, affine=config.norm_affine)
                     if config.do_stable_layer_norm else None)

    @property
    def checkpoint_rules(self):
        audio = "modality_encoders.AUDIO"
        conv_norm = "2.1" if self.config.feat_extract_norm == "layer" else "2"
        positions = f"{audio}.relative_positional_encoder" + (".1" if self.config.conv_pos_pre_ln else "")
        return (
            (r"audio_encoder\.local_encoder\.conv_layers\.(\d+)\.conv", rf"{audio}.local_encoder.conv_layers.\1.0"),
            (r"audio_encoder\.local_encoder\.conv_layers\.(\d+)\.layer_norm",
             rf"{audio}.local_encoder.conv_layers.\1.{conv_norm}"),
            (r"audio_encoder\.project_features\.layer_norm", f"{audio}.project_features.1"),
            (r"audio_encoder\.project_features\.dense", f"{audio}.project_features.2"),
            (r"audio_encoder\.relative_positional_encoder\.pre_norm", f"{audio}.relative_positional_encoder.0"),
            (r"audio_encoder\.relative_positional_encoder\.layers\.(\d+)\.conv",
             lambda m: f"{positions}.{int(m[1]) + 1}.0"),
            (r"audio_encoder\.context_encoder\.norm", f"{audio}.context_encoder.norm"),
            (r"audio_encoder\.context_encoder\.blocks\.(.+)", rf"{audio}.context_encoder.\1"),
            (r"audio_encoder", audio),
            (r"blocks\.(.+)", r"\1"),
            (r"norm", "norm"),
        )

    def alibi(self, num_frames: int) -> jax.Array | None:
        """(1, heads, L, L) ALiBi of L = extra tokens + frames, zero for the extra tokens and for heads
        beyond `num_alibi_heads`; per-layer scales apply on top."""
        c = self.config
        if not c.use_alibi:
            return None
        positions = np.arange(num_frames)
        distance = -np.abs(positions[None] - positions[:, None]).astype(np.float32)
        slopes = np.zeros(c.num_attention_heads, np.float32)
        slopes[:c.num_alibi_heads] = alibi_slopes(c.num_alibi_heads)
        bias = np.pad(slopes[:, None, None] * distance, ((0, 0), (c.num_extra_tokens, 0), (c.num_extra_tokens, 0)))
        return jnp.asarray(bias)[None]

    def alibi_scales(self) -> jax.Array:
        """(prenet + main layers, heads) clamped scales, one row per block."""
        c = self.config
        count = c.prenet_depth + c.num_hidden_layers
        if not c.use_alibi:
            return jnp.zeros((count, c.num_attention_heads))
        scale = self.audio_encoder.alibi_scale[...][:, 0, :, 0, 0]
        scale = jnp.maximum(scale if c.alibi_scale_learned else jax.lax.stop_gradient(scale), 0)
        scale = jnp.pad(jnp.broadcast_to(scale, (scale.shape[0], c.num_alibi_heads)),
                        ((0, 0), (0, c.num_attention_heads - c.num_alibi_heads)))
        if scale.shape[0] == 1:
            return jnp.broadcast_to(scale, (count, c.num_attention_heads))
        return jnp.concatenate([scale[:c.prenet_depth], scale[c.prenet_depth:][:c.num_hidden_layers]])

    def __call__(self, input_values: jax.Array, attention_mask: jax.Array | None = None,
                 output_hidden_states: bool = False) -> SpeechEncoderOutput:
        c, audio = self.config, self.audio_encoder
        features = scale_gradient(audio.local_encoder(input_values), c.local_grad_mult)
        frames = features.shape[1]
        if attention_mask is None:
            mask = jnp.ones(features.shape[:2], bool)
        else:
            lengths = c.frame_lengths(attention_mask.astype(jnp.int32).sum(-1))
            mask = jnp.arange(frames)[None] < lengths[:, None]
        x = audio.project_features(features)
        x = x + audio.relative_positional_encoder(x, mask)
        extra = c.num_extra_tokens
        if extra:
            tokens = audio.extra_tokens[...].astype(x.dtype)
            x = jnp.concatenate([jnp.broadcast_to(tokens, (x.shape[0], *tokens.shape[1:])), x], axis=1)
        key_mask = jnp.pad(mask, ((0, 0), (extra, 0)), constant_values=True)
        alibi, scales = self.alibi(frames), self.alibi_scales()
        x = audio.context_encoder(x, key_mask, alibi, scales[:c.prenet_depth])
        x = self.input_dropout(x)
        y, outputs = self.blocks(x, key_mask, alibi, scales[c.prenet_depth:])
        if self.norm is not None:
            y = self.norm(y)
        hidden_states = tuple(h[:, extra:] for h in (x, *outputs)) if output_hidden_states else None
        return SpeechEncoderOutput(y[:, extra:], mask, hidden_states, mask)


def funasr_files(folder: Path) -> tuple[Path, Path] | None:
    """(config, weights) of a FunASR checkpoint folder: the files its `configuration.json` names
    (`file_path_metas`: `config`, `init_param`), else config.yaml and model.pt, as FunASR looks them up;
    None when `folder` is not FunASR's (it has a Hugging Face config.json, or no config.yaml)."""
    if (folder / "config.json").is_file():
        return None
    names = {"config": FUNASR_CONFIG, "init_param": FUNASR_WEIGHTS}
    if (folder / FUNASR_METAS).is_file():
        metas = json.loads((folder / FUNASR_METAS).read_text()).get("file_path_metas") or {}
        names |= {k: v for k, v in metas.items() if k in names and isinstance(v, str) and (folder / v).is_file()}
    config = folder / names["config"]
    return (config, folder / names["init_param"]) if config.is_file() else None


def read_config(folder: Path) -> Emotion2vecConfig:
    """The Emotion2vecConfig of a FunASR checkpoint folder's config (config.yaml)."""
    import yaml  # noqa: PLC0415

    file = funasr_files(folder)[0]
    values = yaml.safe_load(file.read_text()) or {}
    if values.get("model") != MODEL_CLASS or not isinstance(values.get("model_conf"), dict):
        raise ValueError(f"{file}: model is {values.get('model')!r}; only FunASR's {MODEL_CLASS} checkpoints "
                         "(model: Emotion2vec with a model_conf section) are supported")
    return Emotion2vecConfig.from_model_conf(values["model_conf"], source=str(file))


def read_tensors(folder: Path) -> dict[str, np.ndarray]:
    """The weights of a FunASR checkpoint folder (model.pt), in today's layout: older checkpoints store
    `alibi_scale` without its leading layer axis (FunASR's `upgrade_state_dict_named`)."""
    file = funasr_files(folder)[1]
    if not file.is_file():
        raise FileNotFoundError(f"{folder} has no {file.name}: a FunASR checkpoint needs its weights")
    tensors = read_torch_file(file)
    return {name: t[None] if name.endswith("AUDIO.alibi_scale") and t.ndim == 4 else t for name, t in tensors.items()}


def preprocessor(config: Emotion2vecConfig) -> WaveformPreprocessor:
    """FunASR's waveform preparation: 16 kHz, standardised with F.layer_norm's epsilon when `normalize`."""
    return WaveformPreprocessor(sampling_rate=SAMPLE_RATE, do_normalize=config.normalize, epsilon=NORMALIZE_EPS)
