"""Objectives: (model outputs, batch) -> (loss, its named terms). The train step logs every term.

A config's ``objective`` section names one (``objective.name``) and holds its parameters. Every
mean is over real utterances only (``batch["weight"]``, shape (B,) or (B, U)); padding never counts.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax


def _weighted_mean(values: jax.Array, weight: jax.Array) -> jax.Array:
    return (values * weight).sum() / jnp.maximum(weight.sum(), 1.0)


def _cross_entropy(logits: jax.Array, labels: jax.Array, weight: jax.Array) -> jax.Array:
    losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
    return _weighted_mean(losses, weight)


def cross_entropy(outputs: dict, batch: dict) -> tuple[jax.Array, dict]:
    """Mean cross-entropy of ``logits`` against ``label`` over real utterances."""
    loss = _cross_entropy(outputs["logits"], batch["label"], batch["weight"])
    return loss, {"cross_entropy": loss}


def _kl(p_log: jax.Array, q_log: jax.Array) -> jax.Array:
    """KL(p || q) over the last axis, from log-probabilities."""
    return (jnp.exp(p_log) * (p_log - q_log)).sum(-1)


def self_distillation(outputs: dict, batch: dict, *, temperature: float, task_weight: float, ce_weight: float,
                      kl_weight: float, kl_direction: str = "student_teacher") -> tuple[jax.Array, dict]:
    """LPGNet's loss (Eq. 17-22): the teacher's cross-entropy, and for each student head m (``<m>_logits``)
    present in the outputs (``text_logits``, ``audio_logits``; a unimodal model has none) a cross-entropy
    with the labels and a KL term with the teacher at temperature tau:

        L = lambda_task L_task + lambda_CE sum_m L_CE^m + lambda_KL sum_m L_KL^m

    Eq. 21 as printed is KL(student_tau || teacher_tau) (``kl_direction="student_teacher"``, the
    default); ``"teacher_student"`` is the usual distillation direction (PyTorch's ``kl_div`` of the
    student's log-probabilities against the teacher's). The teacher is a target: no gradient flows
    into it through the KL term. No tau^2 factor (the paper has none; tau = 1 there).
    """
    if kl_direction not in ("student_teacher", "teacher_student"):
        raise ValueError(f"kl_direction = {kl_direction!r}: must be 'student_teacher' or 'teacher_student'")
    labels, weight = batch["label"], batch["weight"]
    task = _cross_entropy(outputs["logits"], labels, weight)
    teacher = jax.nn.log_softmax(jax.lax.stop_gradient(outputs["logits"]).astype(jnp.float32) / temperature)
    terms = {"task": task}
    students = [m for m in ("text", "audio") if f"{m}_logits" in outputs]
    for m in students:
        logits = outputs[f"{m}_logits"]
        student = jax.nn.log_softmax(logits.astype(jnp.float32) / temperature)
        kl = _kl(student, teacher) if kl_direction == "student_teacher" else _kl(teacher, student)
        terms[f"{m}_ce"] = _cross_entropy(logits, labels, weight)
        terms[f"{m}_kl"] = _weighted_mean(kl, weight)
    loss = (task_weight * task + ce_weight * sum(terms[f"{m}_ce"] for m in students)
            + kl_weight * sum(terms[f"{m}_kl"] for m in students))
    return loss, terms


# Each objective's config section, with its defaults. Self-distillation: tau = 1 (LPGNet, Section 4.3)
# and the weights of Table 6's last row (1.5, 1.0, 0.3), whose scores are the full model's in Tables 2-3.
OBJECTIVES = {
    "cross_entropy": (cross_entropy, {}),
    "self_distillation": (self_distillation, dict(temperature=1.0, task_weight=1.5, ce_weight=1.0, kl_weight=0.3,
                                                  kl_direction="student_teacher")),
}


def objective_defaults(name: str) -> dict:
    if name not in OBJECTIVES:
        raise ValueError(f"objective.name = {name!r}: must be one of {sorted(OBJECTIVES)}")
    return {"name": name, **OBJECTIVES[name][1]}


def make_objective(section):
    """The objective a config's ``objective`` section names, with its parameters bound."""
    function, defaults = OBJECTIVES[section.name]
    return functools.partial(function, **{k: section[k] for k in defaults})
