"""DeBERTa-v2/v3 (Hugging Face `DebertaV2Model`): microsoft/deberta-v3-* and the deberta-v2 checkpoints.

DeBERTa replaces BERT's absolute positions with *disentangled* attention (He et al., 2021): besides
content-to-content logits q_i.k_j, each head adds content-to-position (c2p) q_i.Pk[d(i,j)] and
position-to-content (p2c) k_j.Pq[d(i,j)] terms, where P is a learned table of relative-position
embeddings and d(i,j) the (bucketed) distance i - j. Because there are up to three terms, logits are
scaled by 1/sqrt(head_dim * (1 + number of position terms)).

Options, all read from the Hugging Face config:
  relative_attention / pos_att_type   whether and which of c2p, p2c are added;
  position_buckets > 0                distances beyond +-buckets/2 share log-spaced buckets up to
                                      max_relative_positions (v3); otherwise distances are clipped
                                      to +-max_relative_positions (v2 without buckets);
  share_att_key                       P is projected by the content query/key projections (v3)
                                      instead of separate pos_key_proj / pos_query_proj (v2);
  norm_rel_ebd = "layer_norm"         LayerNorm on the relative embedding table (v3);
  conv_kernel_size > 0                v2's convolution branch merged into the first layer's output;
  embedding_size != hidden_size       a bias-free projection after the embeddings;
  position_biased_input               whether absolute position embeddings are also added (v3: no).
Padding positions are zeroed after the embeddings, as in the reference (the convolution sees zeros).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mer_jax.encoders.layers import (
    SHARED_CHECKPOINT_RULES,
    Builder,
    EncoderLayer,
    Embeddings,
    FeedForward,
    SelfAttention,
    TransformerConfig,
    activation,
    run_layers,
    token_mask,
)
from mer_jax.layers import grouped_conv
from mer_jax.layers.encoder_output import EncoderOutput

POSITION_TERMS = ("c2p", "p2c")


@dataclasses.dataclass(frozen=True)
class DebertaV2Config(TransformerConfig):
    """`DebertaV2Config` fields, with the reference's defaults for the keys it reads via getattr."""

    relative_attention: bool = False
    max_relative_positions: int = -1
    position_buckets: int = -1
    pos_att_type: tuple[str, ...] = ()
    share_att_key: bool = False
    norm_rel_ebd: str = "none"
    position_biased_input: bool = True
    conv_kernel_size: int = 0
    conv_groups: int = 1
    conv_act: str = "tanh"
    embedding_size: int | None = None
    attention_head_size: int | None = None

    def __post_init__(self):
        super().__post_init__()
        head_size = self.hidden_size // self.num_attention_heads
        if self.attention_head_size not in (None, head_size):
            raise ValueError(f"attention_head_size {self.attention_head_size} != hidden_size / num_attention_heads "
                             f"({head_size}); the reference's output projection assumes they are equal")
        terms = self.pos_att_type
        if isinstance(terms, str):
            terms = terms.split("|")
        terms = tuple(t.strip().lower() for t in terms or ())
        unknown = set(terms) - set(POSITION_TERMS)
        if unknown:
            raise ValueError(f"pos_att_type {sorted(unknown)} not supported; known: {POSITION_TERMS}")
        object.__setattr__(self, "pos_att_type", terms)
        if self.conv_kernel_size > 0:
            if self.conv_kernel_size % 2 == 0:
                raise ValueError(f"conv_kernel_size {self.conv_kernel_size} must be odd to keep the length")
            activation(self.conv_act)

    @property
    def relative_span(self) -> int:
        """Half the size of the relative embedding table: buckets, or else the maximum distance."""
        return self.position_buckets if self.position_buckets > 0 else self.max_distance

    @property
    def max_distance(self) -> int:
        return self.max_relative_positions if self.max_relative_positions >= 1 else self.max_position_embeddings

    @property
    def uses_rel_norm(self) -> bool:
        return "layer_norm" in [x.strip() for x in self.norm_rel_ebd.lower().split("|")]


def log_bucket_position(relative: np.ndarray, buckets: int, max_position: int) -> np.ndarray:
    """Bucket signed distances: |r| <= buckets/2 is kept; larger |r| maps to
    sign(r) * (mid + ceil(log(|r|/mid) / log((max_position-1)/mid) * (mid-1))), so distances up to
    max_position fill the remaining mid buckets on a log scale. float32 arithmetic, as the reference."""
    mid = buckets // 2
    magnitude = np.where(np.abs(relative) < mid, mid - 1, np.abs(relative))
    ratio = np.log(magnitude.astype(np.float32) / np.float32(mid)) / np.log(np.float32((max_position - 1) / mid))
    log_pos = np.ceil(ratio * np.float32(mid - 1)) + np.float32(mid)
    return np.where(magnitude <= mid, relative, (log_pos * np.sign(relative)).astype(relative.dtype))


@functools.lru_cache(maxsize=64)
def relative_rows(length: int, buckets: int, max_position: int, span: int) -> np.ndarray:
    """Row of the 2*span relative table for each distance d = i - j from -(L-1) to L-1, in that order:
    clip(bucket(d) + span, 0, 2*span - 1). The c2p term of query i, key j reads Pk at d(i - j); the
    p2c term, -d(j - i) + span in the paper's key-major form, reads Pq at the same row because the
    bucketing is odd."""
    relative = np.arange(-(length - 1), length)
    if buckets > 0 and max_position > 0:
        relative = log_bucket_position(relative, buckets, max_position)
    return np.clip(relative + span, 0, 2 * span - 1).astype(np.int32)


def take_rows(table: jax.Array, rows: np.ndarray) -> jax.Array:
    """table[rows] for a static index; a slice when the rows are consecutive (short sequences, whose
    distances are all below the buckets' log range), so that the gradient is a pad, not a scatter."""
    if np.all(np.diff(rows) == 1):
        return table[int(rows[0]):int(rows[-1]) + 1]
    return table[rows]


def skew(per_distance: jax.Array) -> jax.Array:
    """(..., L, 2L-1) -> (..., L, L): out[i, j] = per_distance[i, L-1-i+j], i.e. row i's scores for
    distances L-1 .. -(L-1) laid out by key. Transformer-XL's relative shift: pad a column, flatten,
    and read the rows back with a stride one shorter. No gather, so no scatter in the gradient (XLA's
    CPU scatter took 12% of DeBERTa-v3-base's training step)."""
    length = per_distance.shape[-2]
    padded = jnp.pad(per_distance, [(0, 0)] * (per_distance.ndim - 1) + [(0, 1)])
    flat = padded.reshape(*padded.shape[:-2], 2 * length * length)
    return flat[..., length - 1:length - 1 + length * (2 * length - 1)].reshape(
        *padded.shape[:-2], length, 2 * length - 1)[..., :length]


class DisentangledSelfAttention(SelfAttention):
    """Self-attention plus DeBERTa's c2p / p2c relative-position logits."""

    def __init__(self, b: Builder):
        c: DebertaV2Config = b.config
        super().__init__(b, scale_factor=1 + sum(t in c.pos_att_type for t in POSITION_TERMS))
        self.c2p = c.relative_attention and "c2p" in c.pos_att_type
        self.p2c = c.relative_attention and "p2c" in c.pos_att_type
        separate = c.relative_attention and not c.share_att_key
        self.pos_key = b.dense(c.hidden_size, c.hidden_size) if separate and self.c2p else None
        self.pos_query = b.dense(c.hidden_size, c.hidden_size) if separate and self.p2c else None
        self.pos_dropout = b.dropout(c.hidden_dropout_prob) if c.relative_attention else None

    def logit_bias(self, q: jax.Array, k: jax.Array, *, rel_embeddings: jax.Array | None = None,
                   rel_rows: np.ndarray | None = None) -> jax.Array | float:
        """c2p[b,h,i,j] = q_i . Pk[r(i-j)] and p2c[b,h,i,j] = k_j . Pq[r(i-j)], scaled: each query
        (key) is scored against the 2L-1 distances, then `skew` lays the scores out per key (query)."""
        if rel_embeddings is None:
            return 0.0
        rel = take_rows(self.pos_dropout(rel_embeddings), rel_rows)  # distances -(L-1) .. L-1
        bias = 0.0
        if self.c2p:
            pos_key = self.split_heads((self.pos_key or self.key)(rel))[::-1]
            bias = bias + skew(jnp.einsum("bqhd,mhd->bhqm", q, pos_key))
        if self.p2c:
            pos_query = self.split_heads((self.pos_query or self.query)(rel))
            bias = bias + skew(jnp.einsum("bkhd,mhd->bhkm", k, pos_query)).swapaxes(-1, -2)
        return jnp.asarray(bias, jnp.float32) * self.scale


class ConvLayer(nnx.Module):
    """DeBERTa-v2's local n-gram branch: act(conv1d(embeddings)) is added to the first layer's output,
    then LayerNorm; padding positions are zeroed, as in the reference."""

    def __init__(self, b: Builder):
        c: DebertaV2Config = b.config
        pad = (c.conv_kernel_size - 1) // 2
        self.conv = nnx.Conv(c.hidden_size, c.hidden_size, c.conv_kernel_size, padding=[(pad, pad)],
                             feature_group_count=c.conv_groups, dtype=b.dtype, kernel_init=b.init, rngs=b.rngs,
                             conv_general_dilated=grouped_conv.conv_general_dilated)
        self.act = activation(c.conv_act)
        self.dropout = b.dropout(c.hidden_dropout_prob)
        self.norm = b.norm()

    def __call__(self, embedded: jax.Array, layer_output: jax.Array, mask: jax.Array) -> jax.Array:
        out = self.act(self.dropout(self.conv(embedded)))
        return self.norm(layer_output + out) * mask[..., None]


class DebertaV2Encoder(nnx.Module):
    """DebertaV2Model in Flax NNX; call as `encoder(input_ids, attention_mask, token_type_ids)`."""

    model_type = "deberta-v2"
    base_model_prefix = "deberta"
    checkpoint_rules = SHARED_CHECKPOINT_RULES + (
        (r"layers\.(\d+)\.attention\.(query|key|value)", r"encoder.layer.\1.attention.self.\2_proj"),
        (r"layers\.(\d+)\.attention\.(pos_key|pos_query)", r"encoder.layer.\1.attention.self.\2_proj"),
        (r"rel_embeddings", r"encoder.rel_embeddings"),
        (r"rel_norm", r"encoder.LayerNorm"),
        (r"conv\.conv", r"encoder.conv.conv"),
        (r"conv\.norm", r"encoder.conv.LayerNorm"),
    )
    # Pre-training (RTD/MLM) and task heads beside the base model in Hugging Face checkpoints, and
    # absolute position embeddings that some checkpoints keep although position_biased_input is
    # false (the reference skips them too). Only tensors the encoder does not use can be ignored.
    ignored_checkpoint_keys = (r"^lm_predictions\.", r"^mask_predictions\.", r"^cls\.", r"^classifier\.",
                               r"^pooler\.", r"^qa_outputs\.", r"(^|\.)position_ids$",
                               r"^embeddings\.position_embeddings\.weight$")

    def __init__(self, config: DebertaV2Config, *, dtype=jnp.float32, rngs: nnx.Rngs):
        b = Builder(config, dtype, rngs)
        self.config = config
        self.hidden_size = config.hidden_size
        self.embeddings = Embeddings(
            b, embedding_size=config.embedding_size or config.hidden_size,
            num_positions=config.max_position_embeddings if config.position_biased_input else 0,
            num_segments=config.type_vocab_size)
        self.layers = nnx.List([EncoderLayer(DisentangledSelfAttention(b), FeedForward(b))
                                for _ in range(config.num_hidden_layers)])
        self.rel_embeddings = (b.embed(2 * config.relative_span, config.hidden_size)
                               if config.relative_attention else None)
        # Created whenever the config asks, as in the reference, but only used with relative attention.
        self.rel_norm = b.norm() if config.uses_rel_norm else None
        self.conv = ConvLayer(b) if config.conv_kernel_size > 0 else None

    def relative_context(self, length: int) -> dict:
        """The (normalised) relative embedding table and its row per distance, for every layer."""
        if self.rel_embeddings is None:
            return {}
        c = self.config
        table = self.rel_embeddings.embedding[...].astype(self.rel_embeddings.dtype)
        if self.rel_norm is not None:
            table = self.rel_norm(table)
        rows = relative_rows(length, c.position_buckets, c.max_distance, c.relative_span)
        return {"rel_embeddings": table, "rel_rows": rows}

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None,
                 token_type_ids: jax.Array | None = None, output_hidden_states: bool = False) -> EncoderOutput:
        mask = token_mask(input_ids, attention_mask)
        embedded = self.embeddings(input_ids, token_type_ids) * mask[..., None]
        context = self.relative_context(input_ids.shape[1])
        def call(layer, x, _):
            return layer(x, mask, **context)

        x, first = run_layers(self.layers[:1], embedded, call)
        if self.conv is not None:  # merged into the first layer's output
            x = first[0] = self.conv(embedded, x, mask)
        x, rest = run_layers(self.layers[1:], x, call)
        return EncoderOutput(x, (embedded, *first, *rest) if output_hidden_states else None)
