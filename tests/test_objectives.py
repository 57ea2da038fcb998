"""Self-distillation's KL term in both directions (``objective.kl_direction``) against PyTorch's
`F.kl_div`: ``student_teacher`` is KL(student_tau || teacher_tau), Eq. 21 as printed; ``teacher_student``
is KL(teacher_tau || student_tau), the usual distillation loss. Values and gradients, over real utterances
only, with the teacher a fixed target (no gradient through the KL)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mer_jax.training.objectives import make_objective, objective_defaults  # noqa: E402

CLASSES, TEMPERATURE = 4, 2.0
RNG = np.random.default_rng(7)
OUTPUTS = {k: RNG.normal(scale=2.0, size=(3, 5, CLASSES)).astype(np.float32)
           for k in ("logits", "text_logits", "audio_logits")}
WEIGHT = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], np.float32)  # (dialogues, utterances)
LABEL = RNG.integers(0, CLASSES, (3, 5)).astype(np.int32)


def torch_kl_terms(direction: str):
    """Each student's KL term (weighted mean over real utterances) by F.kl_div, and its gradients."""
    outputs = {k: torch.tensor(v, requires_grad=True) for k, v in OUTPUTS.items()}
    teacher = torch.log_softmax(outputs["logits"].detach() / TEMPERATURE, dim=-1)
    weight = torch.tensor(WEIGHT)
    terms = {}
    for m in ("text", "audio"):
        student = torch.log_softmax(outputs[f"{m}_logits"] / TEMPERATURE, dim=-1)
        # F.kl_div(input=log q, target=log p, log_target=True) = sum p (log p - log q) = KL(p || q)
        if direction == "teacher_student":
            kl = torch.nn.functional.kl_div(student, teacher, reduction="none", log_target=True).sum(-1)
        else:
            kl = torch.nn.functional.kl_div(teacher, student, reduction="none", log_target=True).sum(-1)
        terms[f"{m}_kl"] = (kl * weight).sum() / weight.sum()
    sum(terms.values()).backward()
    grads = {k: (v.grad.numpy() if v.grad is not None else np.zeros_like(OUTPUTS[k])) for k, v in outputs.items()}
    return {k: v.item() for k, v in terms.items()}, grads


@pytest.mark.parametrize("direction", ["student_teacher", "teacher_student"])
def test_kl_direction_matches_torch_kl_div(direction):
    section = ml_collections.ConfigDict(objective_defaults("self_distillation"))
    section.update(temperature=TEMPERATURE, task_weight=0.0, ce_weight=0.0, kl_weight=1.0, kl_direction=direction)
    objective = make_objective(section)  # the config's field reaches the loss

    def loss(outputs):
        return objective(outputs, {"label": jnp.asarray(LABEL), "weight": jnp.asarray(WEIGHT)})

    (value, terms), grads = jax.value_and_grad(loss, has_aux=True)(jax.tree.map(jnp.asarray, OUTPUTS))
    expected, expected_grads = torch_kl_terms(direction)
    for name, want in expected.items():
        np.testing.assert_allclose(terms[name], want, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(value, sum(expected.values()), rtol=1e-5)  # weights 0, 0, 1: the KL terms alone
    for name in OUTPUTS:  # the teacher ("logits") gets none; padded utterances get none
        np.testing.assert_allclose(grads[name], expected_grads[name], atol=1e-6, err_msg=name)
    assert not np.asarray(grads["logits"]).any() and not np.asarray(grads["text_logits"])[WEIGHT == 0].any()


def test_the_two_directions_differ_here():
    """KL is not symmetric: on these logits the two directions' terms differ by 100x the test's tolerance
    (rtol 1e-5) or more (measured: 0.75% and 17%), and their gradients too, so the test above would see
    one direction computed in place of the other."""
    (a, grads_a), (b, grads_b) = torch_kl_terms("student_teacher"), torch_kl_terms("teacher_student")
    assert all(abs(a[k] - b[k]) > 1e-3 * abs(a[k]) for k in a), (a, b)
    assert all(np.abs(grads_a[k] - grads_b[k]).max() > 1e-3 for k in ("text_logits", "audio_logits"))


def test_the_default_direction_is_eq_21_as_printed():
    assert objective_defaults("self_distillation")["kl_direction"] == "student_teacher"
