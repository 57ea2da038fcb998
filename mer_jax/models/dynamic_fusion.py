"""Li's dynamic feature fusion model (papers/dynamic_fusion.md, Section 3).

* Audio branch: 40-dim MFCC frames -> bidirectional LSTM (Eq. 1; 2 x 128 = 256 out); or, for the
  paper's Table 1 Wav2Vec2 row, a pretrained speech encoder over the waveform (`SpeechBranch`), its
  states projected to 256 by a dense layer.
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
* Attention logits are scaled by 1/sqrt(d_head) (d_head = 256 / 8 = 32), as in the Transformer; the
  paper's Eq. 3 does not say.
* MFCCs are standardised with the training part's statistics (`prepare`), and at most ``max_frames``
  (300 = 3 s at 10 ms) frames are kept: the paper truncates "to 10% length", which we read as a cap
  that keeps batches of fixed shape (``--config.features.max_frames`` changes it).
* Dropout 0.3 (Section 4.2, "Regularization: Dropout rate 0.3") is ``model.dropout`` on the layers
  this model adds: the cross-modal attention weights, the attended text before the residual, and the
  MLP's input and hidden layer (and inside the small from-scratch Transformer). A pretrained text or
  speech encoder keeps its checkpoint's own rates (0.1 in DeBERTa-v3-base and BERT-base; a frozen one
  none), the usual fine-tuning practice; the paper does not say where its 0.3 applies.
* K and V: Eq. 3 (Section 3.4) defines them as projections of their own, K = T W_k, V = T W_v, while
  Section 4.5 lists "Key-value projection matrices reuse text branch parameters" among its efficiency
  optimisations. The two passages disagree; ``share_kv`` defaults to Eq. 3 (off), and ``share_kv=True``
  is Section 4.5's reading (below).
* Schedule: the paper names none (Section 4.2 gives the optimiser, learning rates, dropout, clipping
  and batch size only). ``train.schedule = warmup_cosine`` (5% linear warm-up, cosine decay to 1% of
  the peak) is ours, the common recipe for fine-tuning a pretrained Transformer; ``constant`` reads the
  paper's silence literally. AdamW's weight decay (0.01, matrices only) is ours as well.

Switches for the paper's ablations (Tables 1-2) and its efficiency note (Section 4.5):

* ``audio_encoder="mean"``: no temporal modelling, each standardised MFCC frame projected to d by one
  dense layer (so pooling it is the projected mean MFCC: the "mean pooling" baseline).
* ``fusion="concat"``: no cross-modal attention; the mean-pooled audio and text vectors are
  concatenated before the classifier.
* ``audio_pooling="stats"`` (not in the paper; the speech field's statistics pooling): the audio frames
  (or, fused, the fused frames) are pooled into their mean and standard deviation over real frames,
  side by side, instead of the mean alone, so the classifier sees how the states vary through the
  utterance. The ``audio_mean`` output (LPGNet's utterance vectors) stays the mean.
* ``share_kv=True``: "key-value projection matrices reuse text branch parameters": K = V = the text
  branch's projected states, so the attention has no W_k, W_v of its own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.data.examples import Examples
from mer_jax.layers.attention import MultiHeadAttention
from mer_jax.layers.bilstm import BiLSTM
from mer_jax.layers.dense import Dense
from mer_jax.layers.dropout import Dropout
from mer_jax.layers.feature_norm import FeatureNorm
from mer_jax.layers.pooling import length_mask, masked_mean, masked_mean_std
from mer_jax.layers.random_gain import RandomGain
from mer_jax.layers.spec_augment import SpecAugment
from mer_jax.models.base import EmotionModel
from mer_jax.models.speech_encoder import SpeechBranch
from mer_jax.models.text_encoder import encode_text

MODALITIES = ("audio+text", "audio", "text")
QUERIES = ("frames", "pooled")
AUDIO_ENCODERS = ("bilstm", "mean")
FUSIONS = ("cross_attention", "concat")
AUDIO_POOLINGS = ("mean", "stats")


class DynamicFusion(EmotionModel):
    encoder_modules = ("text_encoder",)  # trained at the encoder learning rate (layer-wise AdamW)
    audio_encoder_modules = ("speech_encoder",)  # trained at the speech encoder's learning rate

    def __init__(self, *, num_classes: int, modalities: str = "audio+text", n_mfcc: int = 40,
                 d_model: int = 256, num_heads: int = 8, dropout: float = 0.3, query: str = "frames",
                 audio_encoder: str = "bilstm", fusion: str = "cross_attention", share_kv: bool = False,
                 audio_pooling: str = "mean",
                 text_encoder: nnx.Module | None = None, text_hidden: int = 0, augment: SpecAugment | None = None,
                 gain: RandomGain | None = None, speech: SpeechBranch | None = None, rngs: nnx.Rngs):
        """`n_mfcc`: the size of one frame (with its deltas); `augment`: masking of the frames in training;
        `gain`: gain perturbation of the frames in training;
        `speech`: a speech encoder over waveforms instead of the MFCC branch."""
        check(dict(modalities=modalities, d_model=d_model, num_heads=num_heads, dropout=dropout, query=query,
                   audio_encoder=audio_encoder, fusion=fusion, share_kv=share_kv, audio_pooling=audio_pooling))
        self.modalities, self.query, self.audio_encoder = modalities, query, audio_encoder
        self.pool_audio = masked_mean_std if audio_pooling == "stats" else masked_mean
        self.fusion = fusion if modalities == "audio+text" else None
        self.speech = speech if "audio" in modalities else None
        if self.speech is not None:
            self.speech_projection = Dense(speech.hidden_size, d_model, rngs=rngs)
        elif "audio" in modalities:
            self.feature_norm = FeatureNorm(n_mfcc)
            self.augment, self.gain = augment, gain
            if audio_encoder == "bilstm":
                self.bilstm = BiLSTM(n_mfcc, d_model // 2, rngs=rngs)
            else:
                self.frame_projection = Dense(n_mfcc, d_model, rngs=rngs)
        if "text" in modalities:
            self.text_encoder = text_encoder
            self.text_projection = Dense(text_hidden, d_model, rngs=rngs)  # 768 -> 256 in the paper
        if self.fusion == "cross_attention":
            self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout, project_keys=not share_kv,
                                                      rngs=rngs)
            self.fusion_norm = nnx.LayerNorm(d_model, rngs=rngs)
        self.dropout = Dropout(dropout, rngs=rngs)
        audio_width = (2 if audio_pooling == "stats" else 1) * d_model if "audio" in modalities else 0
        text_width = d_model if modalities == "text" or self.fusion == "concat" else 0
        self.hidden = Dense(audio_width + text_width, d_model, rngs=rngs)
        self.classifier = Dense(d_model, num_classes, rngs=rngs)

    def prepare(self, train: Examples) -> None:
        """Fix the MFCC standardisation from the training part's frames."""
        if "audio" in self.modalities and self.speech is None:
            self.feature_norm.set_statistics(train.fields["mfcc"].values)

    def __call__(self, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """``logits`` (B, num_classes) of a batch with mfcc, mfcc_length (or waveform, waveform_length for a
        speech encoder), input_ids, attention_mask; the
        cross-modal ``attention`` weights (B, heads, queries, tokens) of the fused model; and utterance
        vectors for other models (LPGNet's features): ``audio_mean`` (mean BiLSTM state; ``audio_mask`` its
        real frames), ``text_cls`` and ``text_mean`` (the encoder's first-token state and mean token state),
        ``hidden`` (the classifier's input, (B, d_model))."""
        outputs = {}
        if self.speech is not None:
            states, audio_mask = self.speech(batch["waveform"], batch["waveform_length"])
            audio = self.speech_projection(states)
        elif "audio" in self.modalities:
            audio_mask = length_mask(batch["mfcc_length"], batch["mfcc"].shape[1])
            frames = self.feature_norm(batch["mfcc"] if self.gain is None else self.gain(batch["mfcc"]))
            if self.augment is not None:
                frames = self.augment(frames, batch["mfcc_length"])
            audio = (self.bilstm(frames, batch["mfcc_length"]) if self.audio_encoder == "bilstm"
                     else self.frame_projection(frames))  # (B, T, d)
        if "audio" in self.modalities:
            outputs["audio_mean"], outputs["audio_mask"] = masked_mean(audio, audio_mask), audio_mask
        if "text" in self.modalities:
            encoded, text_mask = encode_text(self.text_encoder, batch)
            outputs["text_cls"], outputs["text_mean"] = encoded[:, 0], masked_mean(encoded, text_mask)
            text = self.text_projection(encoded)
        if self.modalities == "audio":
            pooled = self.pool_audio(audio, audio_mask)
        elif self.modalities == "text":
            pooled = masked_mean(text, text_mask)
        elif self.fusion == "concat":
            pooled = jnp.concatenate([self.pool_audio(audio, audio_mask), masked_mean(text, text_mask)], axis=-1)
        elif self.query == "frames":
            attended, outputs["attention"] = self.cross_attention(audio, text, text_mask)
            pooled = self.pool_audio(self.fusion_norm(audio + self.dropout(attended)), audio_mask)
        else:
            query = masked_mean(audio, audio_mask)[:, None]
            attended, outputs["attention"] = self.cross_attention(query, text, text_mask)
            pooled = self.fusion_norm(query + self.dropout(attended))[:, 0]
        hidden = self.dropout(jax.nn.relu(self.hidden(self.dropout(pooled))))
        return {"logits": self.classifier(hidden), "hidden": hidden, **outputs}



# The model's config section (``config.model``), with the paper's values (Section 4).
DEFAULTS = dict(
    modalities="audio+text",  # audio+text | audio | text
    d_model=256,
    num_heads=8,
    dropout=0.3,  # Section 4.2's rate, on our layers; a pretrained encoder keeps its checkpoint's (docstring)
    query="frames",  # frames | pooled: what the cross-modal attention's Q is
    audio_encoder="bilstm",  # bilstm | mean: temporal modelling of the MFCC frames, or none
    fusion="cross_attention",  # cross_attention | concat
    share_kv=False,  # True: K = V = the text branch's projection (Section 4.5); off: Eq. 3's own W_k, W_v
    audio_pooling="mean",  # mean | stats: the audio frames pooled to their mean, or mean and standard deviation
)


def check(section) -> None:
    """Refuse values the model cannot use, naming the field."""
    section = {**DEFAULTS, **dict(section)}
    for field, allowed in (("modalities", MODALITIES), ("query", QUERIES), ("audio_encoder", AUDIO_ENCODERS),
                           ("fusion", FUSIONS), ("audio_pooling", AUDIO_POOLINGS)):
        if section[field] not in allowed:
            raise ValueError(f"model.{field} = {section[field]!r}: must be one of {list(allowed)}")
    if section["d_model"] <= 0 or section["num_heads"] <= 0 or section["d_model"] % section["num_heads"]:
        raise ValueError(f"model.d_model = {section['d_model']} must be a positive multiple of "
                         f"model.num_heads = {section['num_heads']}")
    if not 0.0 <= section["dropout"] < 1.0:
        raise ValueError(f"model.dropout = {section['dropout']}: must be in [0, 1)")
    if not isinstance(section["share_kv"], bool):
        raise ValueError(f"model.share_kv = {section['share_kv']!r}: must be True or False")
    if section["share_kv"] and section["fusion"] != "cross_attention":
        raise ValueError("model.share_kv = True shares the cross-modal attention's K/V projections, but "
                         f"model.fusion = {section['fusion']!r} has no attention")
    if section["audio_pooling"] != "mean" and section["modalities"] == "text":
        raise ValueError(f"model.audio_pooling = {section['audio_pooling']!r} pools audio frames, but "
                         "model.modalities = 'text' has none")
    if section["audio_pooling"] != "mean" and section["modalities"] == "audio+text" and section["query"] == "pooled" \
            and section["fusion"] == "cross_attention":
        raise ValueError(f"model.audio_pooling = {section['audio_pooling']!r} with model.query = 'pooled': the "
                         "attention's single query is the mean audio vector; use query = 'frames' or fusion = 'concat'")


def build(section, *, num_classes: int, n_mfcc: int, text_encoder: nnx.Module | None, text_hidden: int,
          augment: SpecAugment | None = None, gain: RandomGain | None = None, speech: SpeechBranch | None = None,
          rngs: nnx.Rngs) -> DynamicFusion:
    return DynamicFusion(num_classes=num_classes, n_mfcc=n_mfcc, text_encoder=text_encoder, text_hidden=text_hidden,
                         augment=augment, gain=gain, speech=speech, rngs=rngs,
                         **{field: section[field] for field in DEFAULTS})
