"""Where the dynamic-fusion model's audio frames look in the text (papers/dynamic_fusion.md, Section 5.2,
Table 5).

Eq. 3's cross-modal attention weighs every text token for every audio frame, in each head. For one
utterance this writes heatmaps (audio frames x text tokens, the tokens as labels; one panel per head,
and the head average) and each token's mean weight as CSV; over a run's test part, the tokens each
class attends to most. Weights are read from the model's ``attention`` output of real frames and
tokens only.

What of Table 5 this measures, row by row:

* "Speech: high-frequency band (>4 kHz), 0.67" cannot be measured: the queries are BiLSTM (or speech
  encoder) states, one per audio frame, each mixing every MFCC (or the whole waveform), so they have
  no frequency axis, and Eq. 3's weights are over text tokens, never over frequencies: no weight
  belongs to a band. Measured instead: the weights along audio time (the heatmaps' vertical axis),
  frame by frame.
* "Negative lexicons (e.g. 'unbearable'), 0.58": each token's mean weight (tokens.csv) and each
  class's most attended tokens over the test part (top_tokens.csv; the anger class's for the paper's
  example).
* "Speech peaks <-> text exclamation marks, 0.43": only the text side: a "!" token's weight, where the
  tokenizer keeps it, in the same files; speech peaks (energy maxima) are not located.

Scale: each frame's weights over its utterance's tokens sum to 1, so a token's mean weight is about
1 / (number of tokens) unless attention concentrates; the paper does not say what its 0.67, 0.58 and
0.43 are normalised over, so ours are not comparable to them number for number.
"""

from __future__ import annotations

import collections
import csv
import pathlib

import numpy as np

from mer_jax.data.examples import Examples
from mer_jax.errors import ConfigError

TOP_MIN_COUNT = 3  # a token must occur this often in a class to be ranked (rare tokens rank by luck)


def has_cross_attention(model) -> bool:
    """Whether a config's ``model`` section has cross-modal attention to show (the fused dynamic-fusion model)."""
    return model.name == "dynamic_fusion" and model.modalities == "audio+text" and model.get("fusion") == "cross_attention"


def attention_of(predictor, examples: Examples):
    """Per real example, in order: (its index, weights (heads, frames, tokens) over its real frames and
    tokens, its tokens)."""
    model = predictor.config.model
    if not has_cross_attention(model):
        raise ConfigError(f"the run's model has no cross-modal attention (model.name = {model.name!r}, model.modalities "
                         f"= {model.modalities!r}, model.fusion = {model.get('fusion')!r})")
    for batch, weights in predictor.outputs(examples, "attention"):
        for row in np.flatnonzero(batch["index"] >= 0):
            own = batch["attention_mask"][row].astype(bool)
            if "token_type_ids" in batch:  # a dialogue context follows the utterance's own tokens, never attended
                own &= batch["token_type_ids"][row] == 0
            frames, tokens = int(batch["mfcc_length"][row]), int(own.sum())
            ids = batch["input_ids"][row, :tokens].tolist()
            yield int(batch["index"][row]), weights[row, :, :frames, :tokens], predictor.tokenizer.convert_ids_to_tokens(ids)


def write_utterance_attention(weights: np.ndarray, tokens: list[str], out_dir, *, title: str,
                              frame_seconds: float) -> list[pathlib.Path]:
    """heads.png (one panel per head), mean.png (head average) and tokens.csv (each token's weight averaged
    over frames and heads, and its rank) in `out_dir`."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    heads, frames, _ = weights.shape
    seconds = frames * frame_seconds

    def panel(ax, w, name):
        image = ax.imshow(w, aspect="auto", origin="lower", interpolation="nearest", cmap="viridis",
                          extent=(-0.5, len(tokens) - 0.5, 0, seconds))
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
        ax.set_ylabel("audio time (s)")
        ax.set_title(name, fontsize=9)
        return image

    columns = min(heads, 4)
    rows = -(-heads // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns + 1, 3.2 * rows + 0.8), squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h < heads:
            panel(ax, weights[h], f"head {h + 1}")
        else:
            ax.axis("off")
    figure.suptitle(f"{title}: cross-modal attention per head (frames x tokens)")
    figure.tight_layout()
    paths = [out_dir / "heads.png", out_dir / "mean.png", out_dir / "tokens.csv"]
    figure.savefig(paths[0], dpi=120)
    plt.close(figure)

    figure, ax = plt.subplots(figsize=(max(5.0, 0.35 * len(tokens) + 2), 4.5))
    figure.colorbar(panel(ax, weights.mean(0), f"{title}: mean over {heads} heads"), ax=ax, label="attention weight")
    figure.tight_layout()
    figure.savefig(paths[1], dpi=120)
    plt.close(figure)

    per_token = weights.mean(axis=(0, 1))
    order = np.argsort(-per_token, kind="stable")
    rank = np.empty(len(tokens), int)
    rank[order] = np.arange(1, len(tokens) + 1)
    with open(paths[2], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["position", "token", "mean_weight", "rank"])
        writer.writerows([i, t, f"{w:.6f}", r] for i, (t, w, r) in enumerate(zip(tokens, per_token, rank)))
    return paths


def top_tokens_by_class(predictor, examples: Examples, *, top: int = 10) -> dict[str, list[tuple[str, float, int]]]:
    """Per true class of `examples`: its `top` tokens by mean attention weight (averaged over frames and
    heads, then over the token's occurrences in that class, at least TOP_MIN_COUNT of them), with
    their mean weight and count. Special tokens ([CLS], [SEP], ...) are left out."""
    special = set(predictor.tokenizer.all_special_tokens)
    weights = collections.defaultdict(lambda: collections.defaultdict(list))
    labels = examples.labels()
    for index, w, tokens in attention_of(predictor, examples):
        label = predictor.label_set.classes[labels[index]]
        for token, weight in zip(tokens, w.mean(axis=(0, 1))):
            if token not in special:
                weights[label][token].append(float(weight))
    table = {}
    for label in predictor.label_set.classes:
        ranked = [(t, float(np.mean(v)), len(v)) for t, v in weights[label].items() if len(v) >= TOP_MIN_COUNT]
        table[label] = sorted(ranked, key=lambda x: -x[1])[:top]
    return table


def write_top_tokens(table: dict, path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "rank", "token", "mean_weight", "count"])
        for label, ranked in table.items():
            writer.writerows([label, r + 1, t, f"{w:.6f}", n] for r, (t, w, n) in enumerate(ranked))
