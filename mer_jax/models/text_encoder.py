"""The text branch's encoder, as the config's ``text`` section names it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.data.tokenizer import SMALL_TRANSFORMER
from mer_jax.encoders import from_pretrained
from mer_jax.layers.transformer import TransformerEncoder


def build_text_encoder(text, *, dtype: str, max_tokens: int, dropout: float, frozen: bool, vocab_size: int,
                       rngs: nnx.Rngs) -> tuple[nnx.Module, int]:
    """The encoder named by ``text.encoder``, and its hidden size; a pretrained one computes in `dtype`.

    ``transformer`` is the small randomly initialised encoder; anything else is a Hugging Face BERT
    or DeBERTa-v2/v3 checkpoint (folder or hub id) loaded into our Flax port. A frozen ("static")
    encoder runs without dropout, as a fixed feature extractor.
    """
    if text.encoder == SMALL_TRANSFORMER:
        encoder = TransformerEncoder(vocab_size, max_tokens, text.hidden, text.layers, text.heads, dropout, rngs=rngs)
        return encoder, text.hidden
    encoder, hf_config = from_pretrained(text.encoder, dtype=jnp.dtype(dtype), rngs=rngs, dropout=not frozen)
    return encoder, hf_config.hidden_size


def encode_text(encoder: nnx.Module, batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """The encoder's last states (B, L, d) over a batch's tokens, and the (B, L) mask of the utterance's own
    real tokens: what pooling and cross-modal attention read. Tokens of a dialogue context
    (``token_type_ids`` 1, `text.context_turns`) are attended to inside the encoder only."""
    own = batch["attention_mask"].astype(bool)
    token_types = batch.get("token_type_ids")
    if token_types is not None:
        own &= token_types == 0
    return encoder(batch["input_ids"], batch["attention_mask"], token_types).last_hidden_state, own
