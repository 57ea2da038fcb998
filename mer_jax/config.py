"""The experiment configuration: every field a run reads, with its default.

``configs/*.py`` files start from `base_config(model)` and change what their experiment changes; the
CLI's ``--config.field=value`` overrides are checked against these fields and types (ml_collections
refuses unknown fields and values of the wrong type). The defaults are the dynamic-fusion paper's
setting (Section 4): IEMOCAP, 6 classes, random 8:2 split, 40 MFCC, 128 tokens, layer-wise AdamW
2e-5 / 1e-4, dropout 0.3, clipping 1.0, batch 64. The ``model`` section belongs to the model that
``model.name`` names (its fields and defaults live in the model's module), so one model's fields
never crowd another's.
"""

from __future__ import annotations

import pathlib

import ml_collections

from mer_jax.errors import ConfigError


# train.nonfinite: what a run does at a seed's first non-finite loss, gradient norm or state (training/divergence.py)
NONFINITE = ("stop", "drop_seed")


def base_config(model: str = "dynamic_fusion") -> ml_collections.ConfigDict:
    """Every field of a run of `model`: its own ``model`` section and its default ``objective``."""
    from mer_jax.models.registry import get_model_spec  # noqa: PLC0415
    from mer_jax.training.objectives import objective_defaults  # noqa: PLC0415

    spec = get_model_spec(model)
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = dict(
        corpus="iemocap",  # reader name
        root="data/IEMOCAP_full_release",
        label_set="iemocap6",
        skip_bad_input=False,  # True: skip bad utterances and count them instead of stopping
        # "code=class,...": the corpus' label codes onto label_set's classes (cross-corpus evaluation,
        # e.g. anger=ang,happiness=hap,neutral=neu,sadness=sad); other codes are excluded and counted
        label_map="",
        cache_dir=".cache/features",
        # a tensorflow-datasets dataset of mer_jax.data.tfds_datasets (mer_iemocap, mer_demo, mer_emodb, ...) to
        # read instead of the folder: its records are built from data.root once, then every run streams them
        tfds="",
        tfds_data_dir="",  # where the records live; "" is TFDS' default (~/tensorflow_datasets)
    )
    c.features = dict(
        n_mfcc=40, hop_length=160, max_frames=300, max_tokens=128,  # hop 160 = 10 ms at 16 kHz
        # True: standardise MFCCs per speaker with the speaker's own (unlabelled) frames, test
        # speakers included; the report then says so. False: training-set statistics only.
        speaker_normalization=False,
        # batches pad their frames and tokens (or a dialogue's utterances) to the shortest of this many
        # lengths (quantiles of the training part) that holds them; 1: always to the full size
        length_buckets=4,
        deltas=0,  # 1: append delta MFCCs, 2: delta and delta-delta (librosa.feature.delta, width 9)
        # the audio frames: mfcc (n_mfcc coefficients) or logmel (the n_mels-band log-mel spectrogram in dB
        # that the MFCCs are computed from, as SpecAugment's paper masks it); deltas apply to either
        frames="mfcc",
        n_mels=64,
    )
    # SpecAugment-style masking of the standardised MFCC frames in training (layers/spec_augment.py):
    # bands of coefficients and spans of frames set to zero, drawn anew every step; 0 masks: off
    c.augment = dict(
        freq_masks=0, freq_width=8, time_masks=0, time_width=40,
        # speed perturbation (Kaldi's 0.9, 1.1): the training part also holds every utterance played at each
        # of these speeds (tempo and pitch together; MFCCs computed once per speed and cached); () off
        speeds=(),
        # gain perturbation: each training utterance louder or softer by a level drawn in +-gain_db dB every
        # step (on MFCCs a shift of c0: layers/random_gain.py); 0 off
        gain_db=0.0,
    )
    c.split = dict(
        protocol="random",  # random | holdout | loso | official
        seed=0,  # the split's own seed: runs with other model seeds (config.seed, train.seeds) share the split
        test_fraction=0.2,
        validation_fraction=0.1,
        test_sessions=("Ses05",),
    )
    # the model's own section (mer_jax/models/<name>.py DEFAULTS), the dtype the whole model computes
    # in: float32, or bfloat16 (mixed precision on accelerators: parameters and optimiser stay float32), and
    # how its new layers start: flax (Flax's initialisers) or torch (PyTorch's defaults, as the papers' code:
    # layers/torch_init.py; pretrained encoder weights stay as loaded)
    c.model = {"name": model, "dtype": "float32", "init": "flax", **spec.defaults}
    c.objective = objective_defaults(spec.objective)  # the loss and its parameters (training/objectives.py)
    for name, section in spec.sections.items():  # sections only this model reads (models/registry.py)
        c[name] = dict(section)
    c.text = dict(
        # transformer (small, random init) or a Hugging Face BERT / DeBERTa-v2/v3 name or folder,
        # e.g. microsoft/deberta-v3-base (the paper's encoder)
        encoder="transformer",
        # auto: a word vocabulary fitted on the training transcripts for the small transformer, the
        # checkpoint's own tokenizer for a pretrained encoder; or any Hugging Face name / folder
        tokenizer="auto",
        dtype="float32",  # compute dtype of a pretrained encoder (bfloat16 on accelerators); params stay fp32
        # k > 0: each transcript is read together with the k turns before it in its dialogue (a token pair,
        # features.max_tokens in all, the context cut first); pooling and cross-modal attention read only
        # the utterance's own tokens. Needs a corpus that knows dialogues (IEMOCAP, demo, MELD, manifests)
        context_turns=0,
        layers=2,  # the small transformer's size
        heads=4,
        hidden=256,
    )
    c.audio = dict(
        # mfcc: MFCC frames into model.audio_encoder (the paper's BiLSTM); or a Hugging Face wav2vec2 / HuBERT /
        # WavLM / data2vec-audio name or folder, or a FunASR emotion2vec folder, whose states replace the
        # BiLSTM's (dynamic fusion) or the MFCC frames (LPGNet (Frame)), or make LPGNet's speech_* utterance
        # vectors (waveforms of at most features.max_frames x features.hop_length samples, i.e. 3 s by default)
        encoder="mfcc",
        layer="weighted",  # weighted: a learned softmax-weighted sum of every hidden state (SUPERB); or a layer index
    )
    c.train = dict(
        epochs=20,
        batch_size=64,
        lr=1e-4,
        encoder_lr=2e-5,
        freeze_encoder=False,
        audio_encoder_lr=5e-5,  # the speech encoder's learning rate (audio.encoder a checkpoint)
        freeze_audio_encoder=False,  # True: the speech encoder stays at its pretrained weights (no dropout)
        optimizer="adamw",  # adamw (decoupled weight decay) | adam (L2 penalty added to the gradient, as torch's Adam)
        weight_decay=0.01,  # adamw: matrices only (not biases and norm scales); adam: every parameter, as torch's Adam
        # warmup_cosine (ours: the dynamic-fusion paper names no schedule) | constant (LPGNet's configs)
        schedule="warmup_cosine",
        warmup_fraction=0.05,
        seeds=1,  # how many seeds (config.seed, seed + 1, ...) train together in one vmapped program
        # none | balanced | sqrt: weigh each training utterance's loss by its class, n / (C n_c) (or its
        # square root), so that rare classes count (validation and test are never weighted)
        class_weights="none",
        accumulate_steps=1,  # gradient accumulation: one update per k batches (effective batch k x batch_size)
        clip_norm=1.0,  # global-norm gradient clipping; 0: none
        # d in (0, 1): validation, checkpoints and test use an exponential moving average of the parameters,
        # updated after every optimiser update with weight d (about 1 / (1 - d) updates remembered); 0: off
        ema_decay=0.0,
        select_metric="ua",  # validation metric that chooses the checkpoint
        # a seed's first non-finite loss, gradient norm or state: stop (the run stops there, keeping its last
        # finite checkpoint and history), or drop_seed (several seeds: that seed stops training and is left out
        # of the seeds' mean and ensemble, the others go on; if every seed diverges, stop)
        nonfinite="stop",
        checkpoint_every_epochs=1,
        log_every_steps=10,
    )
    return ml_collections.ConfigDict(c)


def load_run_config(path) -> ml_collections.ConfigDict:
    """The config a run saved (``config.json``), on top of today's defaults, so older runs still load."""
    import json  # noqa: PLC0415

    saved = json.loads(pathlib.Path(path).read_text())
    config = base_config(saved.get("model", {}).get("name", "dynamic_fusion"))
    for key, value in saved.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


def validate(config) -> None:
    """Refuse, before any work starts, values outside what the code knows (naming field and choices)."""
    from mer_jax.data.examples import CLASS_WEIGHT_NAMES  # noqa: PLC0415
    from mer_jax.data.labels import LABEL_SETS, label_set_of  # noqa: PLC0415
    from mer_jax.data.readers import READERS  # noqa: PLC0415
    from mer_jax.data.splits import PROTOCOLS  # noqa: PLC0415
    from mer_jax.models.registry import get_model_spec  # noqa: PLC0415
    from mer_jax.training.objectives import objective_defaults  # noqa: PLC0415

    choices = {
        "data.corpus": READERS, "data.label_set": LABEL_SETS, "split.protocol": PROTOCOLS,
        "train.select_metric": ("wa", "ua", "weighted_f1", "macro_f1", "binary_accuracy", "binary_f1"),
        "text.dtype": ("float32", "bfloat16"),
        "model.dtype": ("float32", "bfloat16"),
        "model.init": ("flax", "torch"),
        "train.class_weights": CLASS_WEIGHT_NAMES, "features.deltas": (0, 1, 2), "features.frames": ("mfcc", "logmel"), "train.optimizer": ("adamw", "adam"),
        "train.schedule": ("warmup_cosine", "constant"), "train.nonfinite": NONFINITE,
    }
    for field, allowed in choices.items():
        section, name = field.split(".")
        value = config[section][name]
        if value not in allowed:
            raise ConfigError(f"config field {field} = {value!r}: must be one of {sorted(allowed)}")
    positive = ("train.epochs", "train.batch_size", "train.seeds", "train.accumulate_steps", "features.max_frames",
                "features.max_tokens", "features.length_buckets", "features.n_mfcc", "features.n_mels")
    for field in positive:
        section, name = field.split(".")
        if config[section][name] <= 0:
            raise ConfigError(f"config field {field} = {config[section][name]!r}: must be positive")
    if config.features.frames == "mfcc" and config.features.n_mfcc > config.features.n_mels:
        raise ConfigError(f"config field features.n_mfcc = {config.features.n_mfcc}: the MFCCs are the DCT of "
                          f"features.n_mels = {config.features.n_mels} log-mel bands, so at most that many")
    for field in ("test_fraction", "validation_fraction"):  # random and holdout protocols cut these shares
        if not 0 < config.split[field] < 1:
            raise ConfigError(f"config field split.{field} = {config.split[field]!r}: must be in (0, 1)")
    if not 0 <= config.train.ema_decay < 1:
        raise ConfigError(f"config field train.ema_decay = {config.train.ema_decay!r}: must be in [0, 1) (0: off)")
    if not isinstance(config.text.context_turns, int) or config.text.context_turns < 0:
        raise ConfigError(f"config field text.context_turns = {config.text.context_turns!r}: must be a whole number >= 0")
    speeds = config.augment.speeds
    if not isinstance(speeds, tuple | list) or not all(isinstance(s, float | int) and 0.5 <= s <= 2 and s != 1
                                                      for s in speeds):
        raise ConfigError(f"config field augment.speeds = {speeds!r}: must be a tuple of speed factors in "
                          "[0.5, 2] other than 1 (e.g. (0.9, 1.1)), or () for none")
    gain_db = config.augment.gain_db
    if not isinstance(gain_db, float | int) or not 0 <= gain_db <= 20:
        raise ConfigError(f"config field augment.gain_db = {gain_db!r}: must be a level in dB between 0 (off) and 20")
    for name, value in config.augment.items():
        if name in ("speeds", "gain_db"):
            continue
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"config field augment.{name} = {value!r}: must be a whole number >= 0")
    if config.split.protocol == "cross_corpus":
        raise ConfigError("split.protocol = 'cross_corpus' trains nothing: it scores a trained run on another corpus "
                          "(mer-jax evaluate --workdir=RUN --corpus=NAME --root=PATH --label_map=...)")
    try:
        label_set_of(config.data)
        spec = get_model_spec(config.model.name)
        _same_fields("model", config.model, {"name": config.model.name, "dtype": "float32", "init": "flax",
                                              **spec.defaults})
        _same_fields("objective", config.objective, objective_defaults(config.objective.name))
        spec.check(config.model)
        spec.check_sections(config)
    except ValueError as e:
        raise ConfigError(f"config field {e}") from None


def _same_fields(section: str, values, defaults: dict) -> None:
    """A section must hold exactly its model's (or objective's) fields: another model's config is refused."""
    if set(values) != set(defaults):
        raise ValueError(f"{section}: {values['name']!r} has the fields {sorted(defaults)}, not {sorted(values)}; "
                         f"start from base_config({values['name']!r}) or that model's config file")
