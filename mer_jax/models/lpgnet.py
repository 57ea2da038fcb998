"""He & Xiao's LPGNet (papers/lpgnet.md, Section 3.3-3.6): dialogue-level emotion recognition from
utterance-level text and audio vectors.

A batch holds ``text`` (B, U, text_dim), ``audio`` (B, U, audio_dim) and ``utterance_mask`` (B, U),
1 for real utterances and 0 for padding (a dialogue may be all padding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.layers.dense import Dense
from mer_jax.layers.gated_fusion import ModalityGate, UnimodalGate
from mer_jax.layers.lpia import InteractionPath, attention_mask
from mer_jax.models.base import EmotionModel

MODALITIES = ("audio+text", "text", "audio")
FFN_MULTIPLIER = 4  # d_ff = 4d (Eq. 7: "typically 2d or 4d")

# The four parallel paths of Section 3.3 (2): name -> (query modality, key/value modality).
PATHS = {"tt": ("text", "text"), "aa": ("audio", "audio"), "at": ("audio", "text"), "ta": ("text", "audio")}
INTRA_PATHS = ("tt", "aa")
# Eq. 12: which gated paths each modality's branch concatenates.
BRANCHES = {"text": ("tt", "at"), "audio": ("aa", "ta")}

DEFAULTS = dict(modalities="audio+text", hidden=768, dropout=0.1, inter_attention=True, intra_attention=True,
                position_ffn=True, gated_fusion=True, context=True)
SWITCHES = ("inter_attention", "intra_attention", "position_ffn", "gated_fusion", "context")


class LPGNet(EmotionModel):
    """LPGNet: LPIA block, dual-gated fusion, classifier, and the self-distillation student heads.

    1. Eq. 2: a 1D convolution of kernel 1 (a per-utterance linear map) projects each modality to d.
    2. Eq. 3-5: four parallel masked scaled dot-product attentions without further projections,
       X_tt = Att(X'_t, X'_t, X'_t), X_aa = Att(X'_a, X'_a, X'_a), X_at = Att(X'_a, X'_t, X'_t),
       X_ta = Att(X'_t, X'_a, X'_a); real utterances attend only to the real utterances of their
       dialogue.
    3. Eq. 6-8: each path's output is refined by its own two-stage residual enhancement:
       Q + A_conv + FFN(A_conv), A_conv the dialogue's compressed attention output broadcast over
       its utterances.
    4. Eq. 9-12: each path is gated (sigmoid(W_g H) * H); T_fused = Linear([H_t; H_at]),
       A_fused = Linear([H_a; H_ta]).
    5. Eq. 13-14: a per-utterance softmax over the two modalities weights T_fused and A_fused.
    6. Eq. 15: ``logits`` = W_c F_final + b_c (the teacher).
    7. Eq. 18: student heads ``text_logits`` = W'_t ReLU(T_fused) + b'_t and ``audio_logits`` =
       W'_a ReLU(A_fused) + b'_a; we read H'_m as each branch's fused representation (Eq. 12), the
       last unimodal representation before the modalities mix. Returned whenever both modalities
       are used; only the loss reads them.

    Dropout (rate ``dropout``) is where the paper writes it, inside the position-wise FFN (Eq. 7).
    Batch norm (Eq. 6) takes its statistics from real dialogues only.

    Variants (Table 3), each a constructor switch:

    * ``modalities="text"`` / ``"audio"``: only that modality's intra attention path and branch;
      ``logits`` is that branch's classifier (Eq. 18's head), and there are no student outputs.
    * ``inter_attention=False``: no X_at / X_ta paths (T_fused = Linear(H_t), A_fused = Linear(H_a)).
    * ``intra_attention=False``: no X_tt / X_aa paths (T_fused = Linear(H_at), A_fused = Linear(H_ta)).
    * ``position_ffn=False``: Eq. 8 without the FFN term, X_final = Q + A_conv. This also removes every
      dropout: the model's only dropout is inside the FFN (Eq. 7), so the ablation trains unregularised
      (the paper does not say whether its ablation kept a dropout elsewhere).
    * ``gated_fusion=False`` (w/o dual-gated fusion): no unimodal gates (H = X) and, instead of the
      softmax modality gate, plain concatenation + linear: F_final = Linear([T_fused; A_fused]).
    * ``context=False`` (not in the paper: a no-context control): every utterance is processed as a
      dialogue of its own, so its attention mask is the identity on real utterances and the global
      compression (Eq. 6) pools that utterance alone (batch-norm statistics then run over real
      utterances). Masking the attention alone would not remove context: Eq. 6's mean over the
      dialogue would still carry it to every utterance.
    """

    def __init__(self, *, num_classes: int, text_dim: int, audio_dim: int, hidden: int = 768, dropout: float = 0.1,
                 modalities: str = "audio+text", inter_attention: bool = True, intra_attention: bool = True,
                 position_ffn: bool = True, gated_fusion: bool = True, context: bool = True, rngs: nnx.Rngs):
        check(dict(modalities=modalities, hidden=hidden, dropout=dropout, inter_attention=inter_attention,
                   intra_attention=intra_attention, position_ffn=position_ffn, gated_fusion=gated_fusion,
                   context=context))
        self.modalities = tuple(m for m in ("text", "audio") if m in modalities.split("+"))
        self.context = context
        multimodal = len(self.modalities) == 2

        def used(path):
            if path in INTRA_PATHS:
                return intra_attention
            return multimodal and inter_attention

        self.branches = tuple((m, tuple(p for p in BRANCHES[m] if used(p))) for m in self.modalities)
        input_dims = {"text": text_dim, "audio": audio_dim}
        self.projections = nnx.Dict({m: Dense(input_dims[m], hidden, rngs=rngs) for m in self.modalities})
        self.paths = nnx.Dict({p: InteractionPath(hidden, d_ff=FFN_MULTIPLIER * hidden, dropout=dropout,
                                                  position_ffn=position_ffn, rngs=rngs)
                               for _, paths in self.branches for p in paths})
        self.gates = nnx.Dict({p: UnimodalGate(hidden, rngs=rngs) for p in self.paths}) if gated_fusion else None
        self.branch_fusion = nnx.Dict({m: Dense(len(paths) * hidden, hidden, rngs=rngs)
                                       for m, paths in self.branches})
        self.heads = nnx.Dict({m: Dense(hidden, num_classes, rngs=rngs) for m in self.modalities})
        if multimodal:
            self.fusion = (ModalityGate(hidden, rngs=rngs) if gated_fusion
                           else Dense(2 * hidden, hidden, rngs=rngs))
            self.classifier = Dense(hidden, num_classes, rngs=rngs)

    def __call__(self, batch: dict) -> dict:
        """``logits`` (B, U, C), and ``text_logits`` / ``audio_logits`` (B, U, C) for a multimodal model."""
        if not self.context:  # every utterance a dialogue of its own
            batch_size, utterances = batch["utterance_mask"].shape
            batch = {key: batch[key].reshape(batch_size * utterances, 1, *batch[key].shape[2:])
                     for key in ("utterance_mask", *self.modalities)}
        out = self.positions({m: batch[m] for m in self.modalities},
                             {m: batch["utterance_mask"] for m in self.modalities})
        if not self.context:
            out = {name: logits.reshape(batch_size, utterances, -1) for name, logits in out.items()}
        return out

    def positions(self, inputs: dict, masks: dict) -> dict:
        """The model over sequences of positions (utterances here; tokens and frames in LPGNet (Frame)):
        ``inputs[m]`` (B, L, F_m) with ``masks[m]`` (B, L), 1 where position i of modality m is real ->
        per-position logits (B, L, C). Path (q, k) lets real positions of q attend to real positions
        of k; Eq. 6 pools the query modality's real positions."""
        projected = {m: self.projections[m](inputs[m]) for m in self.modalities}  # Eq. 2
        fused = {}
        for modality, paths in self.branches:
            streams = []
            for p in paths:
                query, context = PATHS[p]
                stream = self.paths[p](projected[query], projected[context],
                                       attention_mask(masks[query], masks[context]), masks[query])
                streams.append(stream if self.gates is None else self.gates[p](stream))  # Eq. 9-11
            fused[modality] = self.branch_fusion[modality](jnp.concatenate(streams, axis=-1))  # Eq. 12
        students = {m: self.heads[m](jax.nn.relu(fused[m])) for m in self.modalities}  # Eq. 18
        if len(self.modalities) == 1:
            return {"logits": students[self.modalities[0]]}
        if self.gates is None:
            final = self.fusion(jnp.concatenate([fused["text"], fused["audio"]], axis=-1))
        else:
            final = self.fusion(fused["text"], fused["audio"])  # Eq. 13-14
        return {"logits": self.classifier(final), "text_logits": students["text"],  # Eq. 15
                "audio_logits": students["audio"]}


def _fields(section) -> dict:
    return {name: section[name] if name in section else default for name, default in DEFAULTS.items()}


def check(section) -> None:
    """Refuse an LPGNet config section (``modalities``, ``hidden``, ``dropout``, the switches) no model can use."""
    f = _fields(section)
    if f["modalities"] not in MODALITIES:
        raise ValueError(f"model.modalities = {f['modalities']!r}: must be one of {list(MODALITIES)}")
    if not isinstance(f["hidden"], int) or f["hidden"] <= 0:
        raise ValueError(f"model.hidden = {f['hidden']!r}: must be a positive integer")
    if not 0.0 <= f["dropout"] < 1.0:
        raise ValueError(f"model.dropout = {f['dropout']!r}: must be in [0, 1)")
    for name in SWITCHES:
        if not isinstance(f[name], bool):
            raise ValueError(f"model.{name} = {f[name]!r}: must be True or False")
    if f["modalities"] == "audio+text":
        if not (f["inter_attention"] or f["intra_attention"]):
            raise ValueError("model.inter_attention and model.intra_attention are both False: "
                             "an audio+text LPGNet needs at least one kind of attention")
    elif not f["intra_attention"]:
        raise ValueError(f"model.intra_attention = False: a {f['modalities']}-only LPGNet has only its intra "
                         "attention path")


def build(section, *, num_classes: int, text_dim: int, audio_dim: int, rngs: nnx.Rngs) -> LPGNet:
    """The LPGNet a config section describes (missing fields take `DEFAULTS`), after `check`."""
    check(section)
    return LPGNet(num_classes=num_classes, text_dim=text_dim, audio_dim=audio_dim, rngs=rngs, **_fields(section))
