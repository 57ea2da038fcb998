"""A TensorFlow SavedModel of an exported model (`jax2tf`): class probabilities served without JAX.

    export_savedmodel("exported/demo")   # -> exported/demo/savedmodel, with its labels.txt

Its ``serving_default`` signature is the model's jitted evaluation step (`make_eval_step`), lowered to
StableHLO by `jax2tf` and run by TensorFlow's XLA (one ``XlaCallModule`` op). Its inputs are the batch
fields the model reads (`serving_inputs`: ``mfcc`` and ``mfcc_length``, or ``waveform`` and
``waveform_length``; ``input_ids`` and ``attention_mask``, and ``token_type_ids`` for a model trained
with dialogue context); its output ``probabilities`` is (batch, classes), the classes in the order of
``labels.txt``. The weights are variables of the SavedModel: the folder needs nothing else.

The batch size is always free. Frames and tokens are free up to the config's ``max_frames`` and
``max_tokens`` (a longer input is refused with a shape-assertion error naming the limit); two lengths
are fixed at their maximum instead (`fixed_dimensions`), so shorter inputs are padded to it:
``tokens`` for DeBERTa, which computes its relative positions from the token count in numpy, and
``samples`` (``max_frames * hop_length``) for a speech encoder, whose symbolic frame counts through
its strided convolutions take JAX minutes to lower (a tiny wav2vec2: 62 s against 0.3 s).

TensorFlow is imported only inside functions here: models, inference and training import without it.
"""

from __future__ import annotations

import contextlib
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mer_jax.config import load_run_config
from mer_jax.data.features import frame_features
from mer_jax.encoders import DebertaV2Encoder
from mer_jax.errors import ConfigError
from mer_jax.inference import EmotionRecognizer
from mer_jax.models.registry import get_model_spec
from mer_jax.training.experiment import max_samples
from mer_jax.training.steps import make_eval_step

SAVEDMODEL = "savedmodel"  # the SavedModel's folder inside an exported model's
LABELS = "labels.txt"  # in it: the class of each column of ``probabilities``, one a line (as config.json's id2label)
# what the program is lowered for, whichever machine exports it: TensorFlow picks the one it runs on
PLATFORMS = ("cpu", "cuda")


def serving_inputs(config) -> dict[str, tuple[tuple[str | int, ...], str]]:
    """The signature's inputs for a run config: name -> (dimensions, dtype); a dimension is a size, or the
    name of a free one (``batch``, ``frames``, ``samples``, ``tokens``)."""
    modalities = get_model_spec(config.model.name).modalities(config)
    inputs = {}
    if "audio" in modalities and config.audio.encoder == "mfcc":
        inputs["mfcc"] = (("batch", "frames", frame_features(config.features)), "float32")
        inputs["mfcc_length"] = (("batch",), "int32")
    elif "audio" in modalities:
        inputs["waveform"] = (("batch", "samples"), "float32")
        inputs["waveform_length"] = (("batch",), "int32")
    if "text" in modalities:
        names = ("input_ids", "attention_mask") + (("token_type_ids",) if config.text.context_turns else ())
        inputs |= {name: (("batch", "tokens"), "int32") for name in names}
    return inputs


def longest(config) -> dict[str, int]:
    """The largest size of each free length: what the JAX model pads and truncates to."""
    features = config.features
    return {"frames": features.max_frames, "samples": max_samples(features), "tokens": features.max_tokens}


def fixed_dimensions(recognizer: EmotionRecognizer) -> set[str]:
    """The lengths exported at their maximum, not free (the module docstring says why)."""
    model = recognizer.split_model.merge(recognizer.params, recognizer.other)
    fixed = {"samples"} if "waveform" in serving_inputs(recognizer.config) else set()
    if any(isinstance(module, DebertaV2Encoder) for _, module in nnx.iter_modules(model)):
        fixed.add("tokens")
    return fixed


_ERF_NUMERATOR = (-2.72614237e-10, 2.77068146e-08, -2.10102394e-06, -5.69250624e-05, -7.34990637e-04,
                  -2.95460000e-03, -1.60960333e-02)
_ERF_DENOMINATOR = (-1.45660715e-05, -2.13374049e-04, -1.68282702e-03, -7.37332925e-03, -1.42647391e-02)


def _erf(x):
    """erf as StableHLO expands ``chlo.erf`` for float32 (16-bit floats computed in float32): x p(x^2) / q(x^2)
    on x clamped to [-4, 4], clamped to [-1, 1]."""
    y = jnp.clip(x.astype(jnp.float32), -4.0, 4.0)
    y2 = y * y
    numerator = denominator = jnp.zeros_like(y)
    for c in _ERF_NUMERATOR:
        numerator = numerator * y2 + c
    for c in _ERF_DENOMINATOR:
        denominator = denominator * y2 + c
    return jnp.clip(y * numerator / denominator, -1.0, 1.0).astype(x.dtype)


@contextlib.contextmanager
def _erf_inlined():
    """`jax.lax.erf` (exact GELU: every pretrained encoder) lowered to plain StableHLO ops while exporting.

    JAX emits it as a ``chlo.erf`` composite, which TensorFlow 2.21's XlaCallModule can neither read at
    JAX's serialization version ("unregistered operation 'vhlo.composite_v2'") nor, at an older one,
    refine to a concrete batch size ("Module has dynamic shapes").
    """
    from jax._src.interpreters import mlir as registry  # the rule to put back
    from jax.interpreters import mlir

    original = registry._lowerings[jax.lax.erf_p]
    mlir.register_lowering(jax.lax.erf_p, mlir.lower_fun(_erf, multiple_results=False))
    try:
        yield
    finally:
        registry._lowerings[jax.lax.erf_p] = original


def export_savedmodel(folder, batch_size: int | None = None) -> pathlib.Path:
    """Write the SavedModel of the exported model `folder` (what `export_run` writes) to
    ``folder/savedmodel``, replacing one there, and return its path. With `batch_size`, every shape is
    fixed: that many rows, every length at its maximum (what the TFLite converter needs)."""
    folder = pathlib.Path(folder)
    config = load_run_config(folder / "config.json")
    if get_model_spec(config.model.name).level != "utterance":
        raise ConfigError(f"{folder}: {config.model.name} reads dialogues of utterance vectors that other models "
                          "compute; only utterance-level models (from MFCC frames or waveforms and tokens) export "
                          "as a SavedModel")
    return save(EmotionRecognizer.from_pretrained(folder), folder / SAVEDMODEL, batch_size)


def save(recognizer: EmotionRecognizer, out, batch_size: int | None = None) -> pathlib.Path:
    """Write `recognizer`'s model as a SavedModel to the folder `out` (replaced if there), with ``labels.txt``;
    `batch_size` as in `export_savedmodel`."""
    # tf_runtime first: it quiets TensorFlow's start-up, and jax2tf imports TensorFlow
    from mer_jax.data.tf_runtime import tf  # noqa: I001
    from jax.experimental import jax2tf

    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"batch_size = {batch_size}: a SavedModel of fixed shapes needs at least one row")
    out, inputs = pathlib.Path(out), serving_inputs(recognizer.config)
    sizes = {**longest(recognizer.config), "batch": batch_size}
    fixed = set(sizes) if batch_size else fixed_dimensions(recognizer)
    shapes = {n: [sizes[d] if d in fixed else d for d in dims] for n, (dims, _) in inputs.items()}
    free = sorted({d for shape in shapes.values() for d in shape if isinstance(d, str) and d != "batch"})
    names = list(inputs)
    param_tree, other_tree = jax.tree.structure(recognizer.params), jax.tree.structure(recognizer.other)
    step = make_eval_step(recognizer.split_model)

    def probabilities(params, other, *arrays):
        return step(jax.tree.unflatten(param_tree, params), jax.tree.unflatten(other_tree, other),
                    dict(zip(names, arrays)))

    converted = jax2tf.convert(probabilities, with_gradient=False, native_serialization_platforms=PLATFORMS,
                               polymorphic_shapes=[None, None, *(f"({', '.join(map(str, shapes[n]))})" for n in names)],
                               polymorphic_constraints=[f"{d} <= {sizes[d]}" for d in free])
    module = tf.Module()
    module.params = [tf.Variable(np.asarray(a), trainable=False) for a in jax.tree.leaves(recognizer.params)]
    module.other = [tf.Variable(np.asarray(a), trainable=False) for a in jax.tree.leaves(recognizer.other)]
    specs = [tf.TensorSpec([None if isinstance(d, str) else d for d in shapes[n]], inputs[n][1], name=n) for n in names]

    @tf.function(autograph=False, input_signature=specs)
    def serve(*arrays):
        return {"probabilities": converted(module.params, module.other, *arrays)}

    if out.exists():
        shutil.rmtree(out)
    with _erf_inlined():
        tf.saved_model.save(module, str(out), signatures={"serving_default": serve})
    (out / LABELS).write_text("".join(f"{c}\n" for c in recognizer.label_set.class_names))
    return out
