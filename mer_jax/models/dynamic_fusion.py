"""Li's dynamic feature fusion model (papers/dynamic_fusion.md, Section 3).

* Audio branch: 40-dim MFCC frames -> bidirectional LSTM (Eq. 1; 2 x 128 = 256 out).
* Text branch: a text encoder (fine-tuned DeBERTa-V3 in the paper; any encoder here) whose token
  states are compressed to 256 by a dense layer.
* Fusion: 8-head cross-modal attention, Q from audio, K and V from text (Eq. 3), then masked
  temporal average pooling and a two-layer MLP classifier.

Where the paper is vague we choose, and say so:

* Q is the sequence of BiLSTM frame states (the paper's A in R^{T x d}); the attended text is added
  back to the audio states (a residual) and layer-normalised, so the fused vector carries the audio
  content as well as the text it attended to; then it is mean-pooled over real frames. With
  ``query="pooled"`` Q is instead the single pooled audio vector (one query per utterance).
* Unimodal variants (``modalities="audio"`` / ``"text"``) mean-pool their branch and go straight to
  the same classifier: the paper's audio-only and text-only rows.
"""

from __future__ import annotations

import jax
from flax import nnx

from mer_jax.layers.attention import MultiHeadAttention
from mer_jax.layers.bilstm import BiLSTM
from mer_jax.layers.feature_norm import FeatureNorm
from mer_jax.layers.pooling import length_mask, masked_mean

MODALITIES = ("audio+text", "audio", "text")
QUERIES = ("frames", "pooled")


class DynamicFusion(nnx.Module):
    def __init__(self, *, num_classes: int, modalities: str = "audio+text", n_mfcc: int = 40,
                 d_model: int = 256, num_heads: int = 8, dropout: float = 0.3, query: str = "frames",
                 text_encoder: nnx.Module | None = None, text_hidden: int = 0, rngs: nnx.Rngs):
        if modalities not in MODALITIES:
            raise ValueError(f"modalities must be one of {MODALITIES}, got {modalities!r}")
        if query not in QUERIES:
            raise ValueError(f"query must be one of {QUERIES}, got {query!r}")
        self.modalities, self.query = modalities, query
        if "audio" in modalities:
            self.feature_norm = FeatureNorm(n_mfcc)
            self.bilstm = BiLSTM(n_mfcc, d_model // 2, rngs=rngs)
        if "text" in modalities:
            self.text_encoder = text_encoder
            self.text_projection = nnx.Linear(text_hidden, d_model, rngs=rngs)  # 768 -> 256 in the paper
        if modalities == "audio+text":
            self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout, rngs=rngs)
            self.fusion_norm = nnx.LayerNorm(d_model, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.hidden = nnx.Linear(d_model, d_model, rngs=rngs)
        self.classifier = nnx.Linear(d_model, num_classes, rngs=rngs)

    def __call__(self, batch: dict[str, jax.Array]) -> jax.Array:
        """Class logits (B, num_classes) of a batch with mfcc, mfcc_length, input_ids, attention_mask."""
        return self.forward(batch)[0]

    def forward(self, batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array | None]:
        """Logits and the cross-modal attention weights (B, heads, queries, tokens), or None."""
        weights = None
        if "audio" in self.modalities:
            audio_mask = length_mask(batch["mfcc_length"], batch["mfcc"].shape[1])
            audio = self.bilstm(self.feature_norm(batch["mfcc"]), batch["mfcc_length"])  # (B, T, d)
        if "text" in self.modalities:
            text_mask = batch["attention_mask"].astype(bool)
            encoded = self.text_encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state
            text = self.text_projection(encoded)
        if self.modalities == "audio":
            pooled = masked_mean(audio, audio_mask)
        elif self.modalities == "text":
            pooled = masked_mean(text, text_mask)
        elif self.query == "frames":
            attended, weights = self.cross_attention(audio, text, text_mask)
            pooled = masked_mean(self.fusion_norm(audio + self.dropout(attended)), audio_mask)
        else:
            query = masked_mean(audio, audio_mask)[:, None]
            attended, weights = self.cross_attention(query, text, text_mask)
            pooled = self.fusion_norm(query + self.dropout(attended))[:, 0]
        hidden = self.dropout(jax.nn.relu(self.hidden(self.dropout(pooled))))
        return self.classifier(hidden), weights

