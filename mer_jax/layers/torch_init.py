"""PyTorch's default initialisation for a built model (``model.init = "torch"``).

Flax and PyTorch start layers differently, and both papers' code was PyTorch (LPGNet says so: PyTorch
1.8.1; the dynamic-fusion paper fine-tunes Hugging Face checkpoints and names no framework). Flax's
dense and convolution kernels are lecun_normal (a truncated normal of std 1/sqrt(fan_in)) with zero
biases; PyTorch draws kernels and biases from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), whose std is
1/sqrt(3 fan_in), 0.58 of Flax's. It matters most where nothing rescales the start: LPGNet's four
attentions (Eq. 3) have no projection of their own, so their scores are products of two Eq. 2
projections and start about 3x smaller (softer attention) with PyTorch's kernels.

`torch_init` re-initialises, in place, every randomly initialised parameter of a model as the PyTorch
layer it stands for would be (``torch.nn.init`` defaults, torch 2.x):

* `nnx.Linear` (our `Dense`; LPGNet's kernel-1 Conv1D of Eq. 2 and 1x1 convolution of Eq. 6 are dense
  layers here, with the same fan-in): kernel and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
  fan_in = in_features, as ``nn.Linear`` (and ``nn.Conv1d``, kernel 1).
* `nnx.Conv`: the same with fan_in = in_channels / groups x the kernel's size, as ``nn.Conv1d``.
* `BiLSTM`: every input and recurrent weight U(-1/sqrt(hidden), 1/sqrt(hidden)), as ``nn.LSTM``; our
  single bias stands for PyTorch's b_ih + b_hh, so it is drawn as that sum (two independent draws of
  U(-1/sqrt(hidden), 1/sqrt(hidden)), a triangular distribution on +-2/sqrt(hidden)), and the
  forget gate no longer starts at +1.
* `nnx.Embed`: N(0, 1), as ``nn.Embedding``.
* `nnx.LayerNorm`, `nnx.BatchNorm`, `MaskedBatchNorm`: scale 1, bias 0 (running statistics untouched).

The attention projections (`MultiHeadAttention`'s query, key, value and output) are dense layers and
drawn as ``nn.Linear``; ``nn.MultiheadAttention`` would draw its input projections xavier-uniform with
zero biases, but neither paper says which module its code used. Parameters under a module named in
`skip` (a pretrained encoder's checkpoint weights) are left exactly as they are. Other parameters
that start at a constant (e.g. the speech branch's equal layer weights) are not random and stay; a
randomly initialised parameter of any other layer type is an error, so a new layer cannot keep
Flax's start unnoticed. Every draw comes from ``rngs.params()``, so the result is seeded.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from mer_jax.layers.batch_norm import MaskedBatchNorm
from mer_jax.layers.bilstm import BiLSTM

NORMS = (nnx.LayerNorm, nnx.BatchNorm, MaskedBatchNorm)


def _uniform(rngs: nnx.Rngs, param: nnx.Param, bound: float) -> None:
    value = param[...]
    param[...] = jax.random.uniform(rngs.params(), value.shape, value.dtype, -bound, bound)


def _reinitialise(module, rngs: nnx.Rngs) -> list[nnx.Param]:
    """Draw `module`'s parameters as its PyTorch counterpart would; the parameters it drew (none for
    a type it does not know)."""
    if isinstance(module, nnx.Linear | nnx.Conv):
        *window, fan_in, _ = module.kernel.shape  # (in, out) or (*kernel_size, in / groups, out)
        bound = 1 / math.sqrt(fan_in * math.prod(window))
        drawn = [p for p in (module.kernel, module.bias) if p is not None]
        for param in drawn:
            _uniform(rngs, param, bound)
        return drawn
    if isinstance(module, BiLSTM):
        bound = 1 / math.sqrt(module.hidden)
        for param in (module.input_kernel, module.recurrence.kernel):
            _uniform(rngs, param, bound)
        shape = module.bias.shape
        module.bias[...] = sum(jax.random.uniform(rngs.params(), shape, module.bias.dtype, -bound, bound)
                               for _ in ("b_ih", "b_hh"))
        return [module.input_kernel, module.recurrence.kernel, module.bias]
    if isinstance(module, nnx.Embed):
        table = module.embedding[...]
        module.embedding[...] = jax.random.normal(rngs.params(), table.shape, table.dtype)
        return [module.embedding]
    if isinstance(module, NORMS):
        drawn = []
        for param, value in ((module.scale, 1.0), (module.bias, 0.0)):
            if param is not None:
                param[...] = jnp.full_like(param[...], value)
                drawn.append(param)
        return drawn
    return []


def torch_init(model: nnx.Module, rngs: nnx.Rngs, *, skip: tuple[str, ...] = ()) -> None:
    """Re-initialise `model`'s parameters in place as PyTorch's default initialisers would (module
    docstring), drawing from ``rngs.params()``; modules under an attribute named in `skip` (pretrained
    encoders) stay as they are."""
    modules = [(path, module) for path, module in nnx.iter_modules(model) if not set(path) & set(skip)]
    drawn = {id(param) for _, module in modules for param in _reinitialise(module, rngs)}
    for path, module in modules:
        for name, value in vars(module).items():
            if isinstance(value, nnx.Param) and id(value) not in drawn:
                array = value[...]
                if array.size and bool(jnp.any(array != array.reshape(-1)[0])):
                    raise TypeError(f"model.init = 'torch': no PyTorch initialiser for the randomly initialised "
                                    f"{'.'.join(map(str, (*path, name)))} of {type(module).__name__}")
