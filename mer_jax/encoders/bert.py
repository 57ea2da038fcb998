"""BERT (Hugging Face `BertModel`): bert-base/-large, MiniLM and other BERT-architecture checkpoints.

Absolute position and segment embeddings, `num_hidden_layers` post-norm transformer layers, and an
optional pooler `tanh(dense(h_[CLS]))`. Checkpoints without pooler weights (e.g. sentence-transformers
MiniLM) load into an encoder built without one.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.encoders.layers import (
    SHARED_CHECKPOINT_RULES,
    Builder,
    EncoderLayer,
    Embeddings,
    FeedForward,
    SelfAttention,
    TransformerConfig,
    run_layers,
    token_mask,
)
from mer_jax.layers.encoder_output import EncoderOutput


@dataclasses.dataclass(frozen=True)
class BertConfig(TransformerConfig):
    """`BertConfig` fields that shape the encoder. Only absolute positions, encoder-only."""

    position_embedding_type: str = "absolute"
    is_decoder: bool = False
    add_cross_attention: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.position_embedding_type != "absolute":
            raise NotImplementedError(f"position_embedding_type={self.position_embedding_type!r}; only 'absolute'")
        if self.is_decoder or self.add_cross_attention:
            raise NotImplementedError("BERT decoders (is_decoder / add_cross_attention) are not supported")


class BertEncoder(nnx.Module):
    """BertModel in Flax NNX; call as `encoder(input_ids, attention_mask, token_type_ids)`."""

    model_type = "bert"
    base_model_prefix = "bert"
    checkpoint_rules = SHARED_CHECKPOINT_RULES + (
        (r"layers\.(\d+)\.attention\.(query|key|value)", r"encoder.layer.\1.attention.self.\2"),
        (r"pooler", r"pooler.dense"),
    )
    # Pre-training and task heads that sit beside the base model in Hugging Face checkpoints.
    ignored_checkpoint_keys = (r"^cls\.", r"^classifier\.", r"^qa_outputs\.", r"(^|\.)position_ids$")

    def __init__(self, config: BertConfig, *, add_pooler: bool = True, dtype=jnp.float32, rngs: nnx.Rngs):
        b = Builder(config, dtype, rngs)
        self.config = config
        self.hidden_size = config.hidden_size
        self.embeddings = Embeddings(b, embedding_size=config.hidden_size,
                                     num_positions=config.max_position_embeddings,
                                     num_segments=config.type_vocab_size)
        self.layers = nnx.List([EncoderLayer(SelfAttention(b), FeedForward(b))
                                for _ in range(config.num_hidden_layers)])
        self.pooler = b.dense(config.hidden_size, config.hidden_size) if add_pooler else None

    def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None,
                 token_type_ids: jax.Array | None = None, output_hidden_states: bool = False) -> EncoderOutput:
        mask = token_mask(input_ids, attention_mask)
        embedded = self.embeddings(input_ids, token_type_ids)
        x, layer_outputs = run_layers(self.layers, embedded, lambda layer, x, _: layer(x, mask))
        pooled = jnp.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None
        return EncoderOutput(x, (embedded, *layer_outputs) if output_hidden_states else None, pooled)
