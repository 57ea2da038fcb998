"""LPGNet and its loss in PyTorch, written from the paper's equations (papers/lpgnet.md, Eq. 2-22) as
the parity oracle for mer_jax.models.lpgnet and mer_jax.training.objectives.self_distillation.

Choices the paper leaves open are the ones mer_jax documents: attention without Q/K/V projections,
a bias-free 1x1 convolution before batch norm, one shared scalar score W for the modality softmax,
student heads on T_fused / A_fused, and ``context=False`` = identity attention mask with the
"global" compression taken over each utterance alone.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def masked_attention(q, k, v, mask):
    """Eq. 3-5: softmax(Q K^T / sqrt(d)) V with scores -1e9 where mask (B, U, U) is False."""
    scores = q @ k.transpose(1, 2) / math.sqrt(q.size(-1))
    return torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1) @ v


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """nn.BatchNorm1d whose training statistics come from the rows where ``mask`` is True."""

    def forward(self, x, mask):
        if not self.training:
            return super().forward(x)
        out = torch.zeros_like(x)
        out[mask] = F.batch_norm(x[mask], self.running_mean, self.running_var, self.weight, self.bias,
                                 training=True, momentum=self.momentum, eps=self.eps)
        return out


class Path(nn.Module):
    """One attention path with its two-stage residual enhancement (Eq. 3-8)."""

    def __init__(self, d, dropout, position_ffn, context):
        super().__init__()
        self.context = context
        self.conv = nn.Conv1d(d, d, kernel_size=1, bias=False)
        self.bn = MaskedBatchNorm1d(d)
        self.ffn = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(4 * d, d)) if position_ffn else None

    def forward(self, q, kv, mask, kv_mask):
        b, u, d = q.shape
        if self.context:
            pair = mask[:, :, None] & kv_mask[:, None, :]
        else:
            pair = torch.diag_embed(mask)  # each real utterance sees only itself
        attended = masked_attention(q, kv, kv, pair)
        if self.context:  # Eq. 6: Mean over the dialogue's real utterances, 1x1 conv, BN over dialogues
            m = mask.unsqueeze(-1).float()
            pooled = (attended * m).sum(1) / m.sum(1).clamp(min=1)
            conv = self.conv(pooled.unsqueeze(-1)).squeeze(-1)
            a_conv = F.leaky_relu(self.bn(conv, mask.any(1))).unsqueeze(1).expand(b, u, d)
        else:  # each utterance its own dialogue: the mean is the utterance, BN over real utterances
            conv = self.conv(attended.transpose(1, 2)).transpose(1, 2).reshape(b * u, d)
            a_conv = F.leaky_relu(self.bn(conv, mask.reshape(-1))).reshape(b, u, d)
        out = q + a_conv  # Eq. 8
        return out if self.ffn is None else out + self.ffn(a_conv)


class LPGNetReference(nn.Module):
    def __init__(self, num_classes, text_dim, audio_dim, hidden, dropout=0.0, modalities="audio+text",
                 inter_attention=True, intra_attention=True, position_ffn=True, gated_fusion=True, context=True):
        super().__init__()
        d = hidden
        self.multimodal = modalities == "audio+text"
        self.used = [m for m in ("text", "audio") if m in modalities]
        self.branch_paths = {
            "text": [p for p, on in (("tt", intra_attention), ("at", inter_attention and self.multimodal)) if on],
            "audio": [p for p, on in (("aa", intra_attention), ("ta", inter_attention and self.multimodal)) if on],
        }
        self.conv_t = nn.Conv1d(text_dim, d, kernel_size=1)  # Eq. 2
        self.conv_a = nn.Conv1d(audio_dim, d, kernel_size=1)
        names = [p for m in self.used for p in self.branch_paths[m]]
        self.paths = nn.ModuleDict({p: Path(d, dropout, position_ffn, context) for p in names})
        self.gated = gated_fusion
        self.gates = nn.ModuleDict({p: nn.Linear(d, d, bias=False) for p in names})  # Eq. 9
        self.fuse = nn.ModuleDict({m: nn.Linear(len(self.branch_paths[m]) * d, d) for m in self.used})  # Eq. 12
        self.student = nn.ModuleDict({m: nn.Linear(d, num_classes) for m in self.used})  # Eq. 18
        if self.multimodal:
            self.modal_score = nn.Linear(d, 1, bias=False)  # Eq. 13
            self.concat_linear = nn.Linear(2 * d, d)  # w/o dual-gated fusion
            self.classifier = nn.Linear(d, num_classes)  # Eq. 15

    def forward(self, text, audio, utterance_mask, audio_mask=None):
        """Logits per utterance; with `audio_mask`, `utterance_mask` masks the text positions only and
        each path's query modality has its own mask (LPGNet (Frame)'s token and frame sequences)."""
        masks = {"t": utterance_mask.bool()}
        masks["a"] = masks["t"] if audio_mask is None else audio_mask.bool()
        x_t = self.conv_t(text.transpose(1, 2)).transpose(1, 2)
        x_a = self.conv_a(audio.transpose(1, 2)).transpose(1, 2)
        qk = {"tt": (x_t, x_t), "aa": (x_a, x_a), "at": (x_a, x_t), "ta": (x_t, x_a)}
        fused = {}
        for m in self.used:
            hs = []
            for p in self.branch_paths[m]:
                x = self.paths[p](*qk[p], masks[p[0]], masks[p[1]])
                hs.append(torch.sigmoid(self.gates[p](x)) * x if self.gated else x)
            fused[m] = self.fuse[m](torch.cat(hs, dim=-1))
        logits = {f"{m}_logits": self.student[m](F.relu(fused[m])) for m in self.used}
        if not self.multimodal:
            return {"logits": logits[f"{self.used[0]}_logits"]}
        t, a = fused["text"], fused["audio"]
        if self.gated:
            alpha = torch.softmax(torch.cat([self.modal_score(t), self.modal_score(a)], dim=-1), dim=-1)
            final = alpha[..., :1] * t + alpha[..., 1:] * a  # Eq. 14
        else:
            final = self.concat_linear(torch.cat([t, a], dim=-1))
        return {"logits": self.classifier(final), **logits}


def _t(array) -> torch.Tensor:
    return torch.tensor(np.asarray(array))


def _linear(torch_linear: nn.Module, flax_linear) -> None:
    weight = _t(flax_linear.kernel[...]).T
    torch_linear.weight.copy_(weight.reshape(torch_linear.weight.shape))
    if torch_linear.bias is not None:
        torch_linear.bias.copy_(_t(flax_linear.bias[...]))


@torch.no_grad()
def load_flax(reference: LPGNetReference, model) -> LPGNetReference:
    """Copy a mer_jax LPGNet's parameters and batch-norm statistics into ``reference``."""
    for m, conv in (("text", reference.conv_t), ("audio", reference.conv_a)):
        if m in reference.used:
            _linear(conv, model.projections[m])
    for p, path in reference.paths.items():
        enhancement = model.paths[p].enhancement
        _linear(path.conv, enhancement.compression.conv)
        norm = enhancement.compression.norm
        for ours, theirs in ((norm.scale, path.bn.weight), (norm.bias, path.bn.bias),
                             (norm.mean, path.bn.running_mean), (norm.var, path.bn.running_var)):
            theirs.copy_(_t(ours[...]))
        if path.ffn is not None:
            ffn = enhancement.ffn
            path.ffn[0].weight.copy_(_t(ffn.norm.scale[...]))
            path.ffn[0].bias.copy_(_t(ffn.norm.bias[...]))
            _linear(path.ffn[1], ffn.up)
            _linear(path.ffn[4], ffn.down)
        if reference.gated:
            _linear(reference.gates[p], model.gates[p].gate)
    for m in reference.used:
        _linear(reference.fuse[m], model.branch_fusion[m])
        _linear(reference.student[m], model.heads[m])
    if reference.multimodal:
        _linear(reference.modal_score if reference.gated else reference.concat_linear,
                model.fusion.score if reference.gated else model.fusion)
        _linear(reference.classifier, model.classifier)
    return reference


def self_distillation_loss(outputs, labels, weight, *, temperature, task_weight, ce_weight, kl_weight):
    """Eq. 17-22 over the real utterances (weight > 0); the teacher is a fixed target in the KL."""
    real = weight > 0
    y = labels[real].long()
    teacher = outputs["logits"][real]
    terms = {"task": F.cross_entropy(teacher, y)}  # Eq. 17
    p_teacher = torch.softmax(teacher.detach() / temperature, dim=-1)
    students = [m for m in ("text", "audio") if f"{m}_logits" in outputs]
    for m in students:
        student = outputs[f"{m}_logits"][real]
        terms[f"{m}_ce"] = F.cross_entropy(student, y)  # Eq. 20
        p_student = torch.softmax(student / temperature, dim=-1)  # Eq. 19
        terms[f"{m}_kl"] = (p_student * torch.log(p_student / p_teacher)).sum(-1).mean()  # Eq. 21
    loss = (task_weight * terms["task"] + ce_weight * sum(terms[f"{m}_ce"] for m in students)
            + kl_weight * sum(terms[f"{m}_kl"] for m in students))  # Eq. 22
    return loss, terms
