"""Flax NNX text encoders (BERT, DeBERTa-v2/v3) that load Hugging Face checkpoints.

    encoder, hf_config = from_pretrained("microsoft/deberta-v3-base", dtype=jnp.bfloat16)
    tokenizer = load_tokenizer("microsoft/deberta-v3-base")
    out = encoder(ids, mask)          # out.last_hidden_state (B, L, H), out.cls, out.pooled

Encoders follow NNX conventions: dropout draws from the `dropout` RNG stream (`nnx.reseed(encoder,
dropout=key)`), `.train()` / `.eval()` toggle it. Freezing is the optimiser's business.
"""

from mer_jax.encoders.bert import BertConfig, BertEncoder
from mer_jax.encoders.checkpoint import CheckpointMismatchError, load_weights, read_tensors
from mer_jax.encoders.deberta import DebertaV2Config, DebertaV2Encoder
from mer_jax.encoders.factory import encoder_config, from_config, from_pretrained, load_tokenizer
from mer_jax.encoders.layers import EncoderOutput

__all__ = [
    "BertConfig",
    "BertEncoder",
    "CheckpointMismatchError",
    "DebertaV2Config",
    "DebertaV2Encoder",
    "EncoderOutput",
    "encoder_config",
    "from_config",
    "from_pretrained",
    "load_tokenizer",
    "load_weights",
    "read_tensors",
]
