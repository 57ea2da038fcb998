"""Hugging Face checkpoints: find the folder, read its tensors, and load them strictly into an encoder.

A folder holds `config.json` and the weights as `model.safetensors`, `pytorch_model.bin` (needs
PyTorch), or either one sharded with an `*.index.json`; a FunASR folder (emotion2vec.py) holds
`config.yaml` and `model.pt` (or the files its `configuration.json` names). A name that is not a local folder is taken
as a hub id and fetched with `huggingface_hub.snapshot_download`; nothing else touches the network.

Loading is strict. Each Flax parameter has exactly one checkpoint name, derived from the encoder's
`checkpoint_rules` (Flax module path -> Hugging Face module path, e.g. `layers.0.attention.query` ->
`encoder.layer.0.attention.self.query`) and its leaf (`kernel`, `scale`, `embedding` -> `weight`;
a batch norm's running averages `mean`, `var` -> `running_mean`, `running_var`;
a weight-normed convolution's `weight_g`, `weight_v` -> `parametrizations.weight.original0/1`, the
names PyTorch's parametrisation saves; older checkpoints' `weight_g`/`weight_v` are renamed to them;
a bare parameter such as WavLM's `gru_rel_pos_const` keeps its name).
Every checkpoint tensor must be used or match the encoder's `ignored_checkpoint_keys` (task and
pre-training heads, `position_ids`) or be a batch norm's `num_batches_tracked`; anything missing, unexpected or of the wrong shape raises
`CheckpointMismatchError` naming all offenders.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

log = logging.getLogger(__name__)

# Downloaded for a hub id: config, tokenizer files and safetensors weights; PyTorch weights only
# when the repository has no safetensors.
HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.yaml", "model*.safetensors"]
HUB_TORCH_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json", "*.pt"]  # *.pt: FunASR's
# Keys under which PyTorch training checkpoints nest their state dict (FunASR's loader unwraps these).
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")

LEAF_NAMES = {"kernel": "weight", "scale": "weight", "embedding": "weight", "bias": "bias",
              "mean": "running_mean", "var": "running_var",
              "weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1"}
# Legacy tensor name endings -> current ones: LayerNorm gamma/beta, torch.nn.utils.weight_norm's g and v.
LEGACY_NAMES = ((r"LayerNorm\.gamma$", "LayerNorm.weight"), (r"LayerNorm\.beta$", "LayerNorm.bias"),
                (r"\.weight_g$", ".parametrizations.weight.original0"),
                (r"\.weight_v$", ".parametrizations.weight.original1"))


class CheckpointMismatchError(ValueError):
    """The checkpoint's tensors do not correspond one to one with the encoder's parameters."""


def hub_folder(name_or_path: str | Path, revision: str | None = None, *, cache_dir: str | Path | None = None,
               allow_patterns: list[str] | None = None) -> Path:
    """A local folder as is; otherwise a Hugging Face hub id, downloaded (or found in the cache, which is all
    that ``HF_HUB_OFFLINE=1`` allows) by ``huggingface_hub.snapshot_download``: its files that match
    `allow_patterns` (default: all), at `revision` (a branch, tag or commit), under `cache_dir`."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise FileNotFoundError(f"{name!r} is not a folder (and does not look like a hub id)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, revision=revision, cache_dir=cache_dir, allow_patterns=allow_patterns))
    except Exception as error:
        raise FileNotFoundError(f"{name!r} is not a local folder and the Hugging Face hub could not "
                                f"provide it: {error}") from error


def resolve(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A checkpoint folder: local, or a hub id's safetensors files (its PyTorch files when it has none)."""
    folder = hub_folder(name_or_path, revision, allow_patterns=HUB_PATTERNS)
    if folder != Path(name_or_path).expanduser() and not any(folder.glob("model*.safetensors")):
        folder = hub_folder(name_or_path, revision, allow_patterns=HUB_TORCH_PATTERNS)
    return folder


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a checkpoint folder, safetensors preferred."""
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (folder / single).is_file():
            return [folder / single]
        if (folder / index).is_file():
            shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            return [folder / shard for shard in shards]
    raise FileNotFoundError(f"{folder} has no model.safetensors or pytorch_model.bin (nor a sharded index)")


def read_tensors(folder: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint folder by name, as host arrays (bfloat16 via ml_dtypes)."""
    tensors: dict[str, np.ndarray] = {}
    for file in weight_files(Path(folder)):
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(file, framework="flax") as f:
                tensors.update({name: np.asarray(f.get_tensor(name)) for name in f.keys()})
        else:
            tensors.update(read_torch_file(file))
    return tensors


def read_torch_file(file: Path) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch file: a state dict, possibly nested under `STATE_DICT_KEYS`. Only tensors
    are unpickled (`weights_only`): a training checkpoint holding other Python objects is refused."""
    import pickle

    import torch

    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(f"{file} holds Python objects besides tensors, which mer_jax does not unpickle; if you "
                         f"trust it, save its state dict alone: torch.save(torch.load(path, weights_only=False)"
                         f"['model'], path) ({str(error).splitlines()[0]})") from None
    while isinstance(state, dict) and (key := next((k for k in STATE_DICT_KEYS if k in state), None)):
        state = state[key]
    bad = [name for name, t in state.items() if not isinstance(t, torch.Tensor)] if isinstance(state, dict) else [""]
    if bad:
        raise ValueError(f"{file} is not a state dict of tensors (e.g. {bad[0]!r})")
    return {name: (t.float() if t.dtype == torch.bfloat16 else t).numpy() for name, t in state.items()}


def canonical_names(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """Drop the task models' base prefix (`bert.`, `wav2vec2.`) and rename legacy names (`LEGACY_NAMES`)."""
    renamed: dict[str, np.ndarray] = {}
    for name, tensor in tensors.items():
        new = name[len(prefix) + 1:] if name.startswith(prefix + ".") else name
        for legacy, current in LEGACY_NAMES:
            new = re.sub(legacy, current, new)
        if new in renamed:
            raise CheckpointMismatchError(f"two checkpoint tensors map to {new!r} (one of them is {name!r})")
        renamed[new] = tensor
    return renamed


def checkpoint_name(path: tuple, rules) -> str:
    """Hugging Face tensor name of the Flax parameter at `path` (module path + leaf)."""
    module_path, leaf = ".".join(str(p) for p in path[:-1]), str(path[-1])
    for pattern, replacement in rules:
        if re.fullmatch(pattern, module_path):
            return f"{re.sub(pattern, replacement, module_path)}.{LEAF_NAMES.get(leaf, leaf)}"
    raise KeyError(f"no checkpoint rule for Flax parameter {'.'.join(map(str, path))}")


def load_weights(encoder: nnx.Module, tensors: dict[str, np.ndarray]) -> list[str]:
    """Copy checkpoint tensors into `encoder`'s parameters and batch statistics (cast to their dtype);
    return ignored names.

    Linear and convolution kernels are stored with their axes reversed relative to PyTorch
    ((out, in) -> (in, out); (out, in/groups, k) -> (k, in/groups, out)).
    """
    tensors = canonical_names(tensors, encoder.base_model_prefix)
    params = nnx.to_flat_state(nnx.state(encoder, nnx.Any(nnx.Param, nnx.BatchStat)))
    expected = {checkpoint_name(path, encoder.checkpoint_rules): (path, param) for path, param in params}

    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    ignored = [n for n in extra if any(re.search(p, n) for p in (*encoder.ignored_checkpoint_keys,
                                                                  r"\.num_batches_tracked$"))]
    unexpected = sorted(set(extra) - set(ignored))
    mismatched = []
    updates = []
    for name, (path, param) in expected.items():
        if name not in tensors:
            continue
        tensor = tensors[name]
        if path[-1] == "kernel":
            tensor = np.transpose(tensor)
        if tensor.shape != param.shape:
            mismatched.append(f"{name}: checkpoint {tuple(tensors[name].shape)}, encoder expects "
                              f"{tuple(param.shape[::-1] if path[-1] == 'kernel' else param.shape)}")
            continue
        updates.append((path, type(param)(jnp.asarray(tensor, dtype=param.dtype))))

    problems = []
    if missing:
        problems.append(f"missing from the checkpoint: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected in the checkpoint: {', '.join(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {'; '.join(mismatched)}")
    if problems:
        raise CheckpointMismatchError(f"cannot load into {type(encoder).__name__}: " + " | ".join(problems))
    nnx.update(encoder, nnx.from_flat_state(updates))
    if ignored:
        log.info("ignored %d checkpoint tensors not part of the base model: %s", len(ignored), ", ".join(ignored))
    return ignored
