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

import ast
import io
import pathlib
import textwrap
import tokenize

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
    c.seed = 0  # the model's seed (initialisation, dropout); train.seeds > 1 trains seed, seed + 1, ... together
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
        n_mfcc=40,  # MFCC coefficients per frame
        hop_length=160,  # samples between frames: 160 = 10 ms at 16 kHz
        max_frames=300,  # frames per utterance at most (longer audio is cut at the end)
        max_tokens=128,  # tokens per transcript at most, special tokens included
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
        n_mels=64,  # mel bands the MFCCs (or log-mel frames) are computed from
    )
    # SpecAugment-style masking of the standardised MFCC frames in training (layers/spec_augment.py):
    # bands of coefficients and spans of frames set to zero, drawn anew every step; 0 masks: off
    c.augment = dict(
        freq_masks=0,  # bands of coefficients masked per utterance
        freq_width=8,  # the widest band, in coefficients
        time_masks=0,  # spans of frames masked per utterance
        time_width=40,  # the longest span, in frames
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
        test_fraction=0.2,  # random: the share of utterances tested
        validation_fraction=0.1,  # random, holdout: the share of the training part that selects the checkpoint
        test_sessions=("Ses05",),  # holdout: the sessions (speakers) held out for the test
    )
    # the model's own section: its other fields are the model module's DEFAULTS (mer_jax/models/<name>.py)
    c.model = {
        "name": model,  # dynamic_fusion | lpgnet | lpgnet_frame | linear (models/registry.py)
        # the dtype the whole model computes in: float32, or bfloat16 (mixed precision on accelerators:
        # parameters and optimiser stay float32)
        "dtype": "float32",
        # how its new layers start: flax (Flax's initialisers) or torch (PyTorch's defaults, as the papers'
        # code: layers/torch_init.py); pretrained encoder weights stay as loaded
        "init": "flax",
        **spec.defaults,
    }
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
        layers=2,  # the small transformer's layers
        heads=4,  # its attention heads
        hidden=256,  # its width
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
        batch_size=64,  # the global batch, split over all devices (and hosts)
        lr=1e-4,  # the learning rate of every parameter outside the pretrained encoders
        encoder_lr=2e-5,  # the text encoder's learning rate (layer-wise, as the dynamic-fusion paper's)
        freeze_encoder=False,  # True: the text encoder stays as it is (no gradient, no dropout)
        audio_encoder_lr=5e-5,  # the speech encoder's learning rate (audio.encoder a checkpoint)
        freeze_audio_encoder=False,  # True: the speech encoder stays at its pretrained weights (no dropout)
        optimizer="adamw",  # adamw (decoupled weight decay) | adam (L2 penalty added to the gradient, as torch's Adam)
        weight_decay=0.01,  # adamw: matrices only (not biases and norm scales); adam: every parameter, as torch's Adam
        # warmup_cosine (ours: the dynamic-fusion paper names no schedule) | constant (LPGNet's configs)
        schedule="warmup_cosine",
        warmup_fraction=0.05,  # warmup_cosine: the share of the steps that warm up linearly
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
        checkpoint_every_epochs=1,  # how often the latest state is saved (a run resumes from it)
        log_every_steps=10,  # TensorBoard's training scalars, every this many steps
    )
    return ml_collections.ConfigDict(c)


# An exported model's config.json holds the Hub's label maps beside the run config.
HUB_LABEL_MAPS = ("id2label", "label2id")


def load_run_config(path) -> ml_collections.ConfigDict:
    """The config a run saved (``config.json``), on top of today's defaults, so older runs still load."""
    import json  # noqa: PLC0415

    saved = json.loads(pathlib.Path(path).read_text())
    config = base_config(saved.get("model", {}).get("name", "dynamic_fusion"))
    for key, value in saved.items():
        if key in HUB_LABEL_MAPS:
            continue
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    return config


# Fields that name local paths: a run saves them absolute, so that its folder works from any working directory.
# The first always name folders; the others may be a Hugging Face hub id instead, kept as it is.
FOLDER_FIELDS = ("data.root", "data.cache_dir", "data.tfds_data_dir")
PATH_OR_HUB_FIELDS = ("text.encoder", "text.tokenizer", "audio.encoder", "utterance_features.audio_dir")


def with_absolute_paths(config) -> ml_collections.ConfigDict:
    """A copy of `config` whose relative local paths are absolute (resolved against the working directory)."""
    config = ml_collections.ConfigDict(config.to_dict())
    for field in (*FOLDER_FIELDS, *PATH_OR_HUB_FIELDS):
        section, name = field.split(".")
        value = config[section][name] if section in config else ""
        if value and (field in FOLDER_FIELDS or pathlib.Path(value).exists()):
            config[section][name] = str(pathlib.Path(value).expanduser().absolute())
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


def override_field(override: str) -> str:
    """The field ``a.b`` an override ``--config.a.b=value`` sets."""
    return override.removeprefix("--config.").split("=", 1)[0]


def apply_overrides(config, overrides: list[str], allowed: tuple[str, ...]) -> None:
    """Set ``--config.section.field=value`` overrides on a loaded config, each value parsed as the field's
    type; a field outside `allowed` (e.g. one that changes the trained model) is refused."""
    for override in overrides:
        field, text = override_field(override), override.partition("=")[2]
        if field not in allowed:
            raise ConfigError(f"{override}: only {', '.join(allowed)} can change here (where the data lives now); "
                              "the other fields made the trained model")
        section, name = field.split(".")
        current = config[section][name]
        try:
            value = (text.lower() in ("1", "true") if isinstance(current, bool) else
                     ast.literal_eval(text) if isinstance(current, tuple | list) else type(current)(text))
        except (ValueError, SyntaxError) as e:
            raise ConfigError(f"{override}: {e}") from None
        config[section][name] = value


# Where the fields' defaults are written, and the config section each assignment there fills.
_DEFAULTS_SOURCES = ("config.py", "models/*.py", "training/objectives.py")
_SECTION_OF_NAME = {"defaults": "model", "objectives": "objective"}


def field_comments() -> dict[tuple[str, str], str]:
    """(section, field) -> what the field means: the comment beside, or else just above, the line that sets
    its default (base_config, the models' DEFAULTS and own sections, the objectives' parameters)."""
    package = pathlib.Path(__file__).resolve().parent
    found = {}
    for pattern in _DEFAULTS_SOURCES:
        for path in sorted(package.glob(pattern)):
            source = path.read_text()
            comments = {token.start[0]: (token.string.lstrip("# ").strip(), token.line.strip().startswith("#"))
                        for token in tokenize.generate_tokens(io.StringIO(source).readline)
                        if token.type == tokenize.COMMENT}
            for node in ast.walk(ast.parse(source)):
                if not (isinstance(node, ast.Assign) and len(node.targets) == 1):  # c.x = ..., NAME = ...
                    continue
                target = node.targets[0]
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                section = _SECTION_OF_NAME.get(name.lower(), name.lower())
                keys = list(_keys(node.value))
                lines = [line for _, line in keys]
                for key, line in keys:
                    comment = _comment_at(comments, line) if lines.count(line) == 1 else ""  # one field per line
                    if comment and (section, key) not in found:
                        found[section, key] = comment
    return found


def _keys(node):
    """(key, line) of every ``dict(key=...)`` keyword and ``{"key": ...}`` entry under `node`."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call) and getattr(inner.func, "id", None) == "dict":
            yield from ((k.arg, k.value.lineno) for k in inner.keywords if k.arg)
        elif isinstance(inner, ast.Dict):
            yield from ((k.value, k.lineno) for k in inner.keys if isinstance(k, ast.Constant))


def _comment_at(comments: dict, line: int) -> str:
    """The comment at the end of `line`, or else the block of comment lines right above it."""
    if line in comments and not comments[line][1]:
        return comments[line][0]
    block = []
    while line - 1 in comments and comments[line - 1][1]:
        line -= 1
        block.insert(0, comments[line][0])
    return " ".join(block)


def describe(config) -> str:
    """Every field of `config` with its value, under what it means, in the form of ``--config.`` overrides."""
    comments = field_comments()
    lines = []
    for section, values in config.items():
        fields = values.items() if isinstance(values, ml_collections.ConfigDict) else [(None, values)]
        for name, value in fields:
            comment = comments.get((section, name), "")
            lines += textwrap.wrap(comment, 100, initial_indent="# ", subsequent_indent="# ")
            lines.append(f"{section if name is None else f'{section}.{name}'} = {value!r}")
    return "\n".join(lines)
