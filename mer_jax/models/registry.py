"""From a config to a model: the one place that knows every model's name.

Each model module says what its config section holds (``DEFAULTS``), which values it refuses
(``check``) and how it is built; its spec here adds what the model reads from a corpus, at which
level it predicts (one utterance, or every utterance of a dialogue), its default objective, and
config sections only it uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from flax import nnx

from mer_jax.data.examples import CLASS_WEIGHT_NAMES
from mer_jax.data.features import MfccParams, frame_features
from mer_jax.data.tokenizer import SMALL_TRANSFORMER
from mer_jax.layers.random_gain import RandomGain
from mer_jax.layers.spec_augment import SpecAugment
from mer_jax.layers.torch_init import torch_init
from mer_jax.models import dynamic_fusion, linear, lpgnet, lpgnet_frame
from mer_jax.models.speech_encoder import build_speech_branch
from mer_jax.models.text_encoder import build_text_encoder


def model_rngs(seed: int) -> nnx.Rngs:
    """The named random streams every model is built with: ``params`` for initialisation and
    ``dropout``, which the train step reseeds from (seed, step) so that every step draws new masks."""
    return nnx.Rngs(params=seed, dropout=seed + 1)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    defaults: dict  # the model's config section with its defaults
    check: Callable  # (model section) -> None, raising ValueError for values the model cannot use
    modalities: Callable  # (config) -> what the model reads from the corpus: a subset of {"audio", "text"}
    # (config, sizes, rngs, text_encoder, speech_encoder) -> model; sizes: num_classes, vocab_size, text_dim, audio_dim
    build: Callable
    objective: str = "cross_entropy"  # the default loss (mer_jax/training/objectives.py)
    level: str = "utterance"  # utterance | dialogue: what one example (one row of a batch) is
    sections: dict = dataclasses.field(default_factory=dict)  # config sections only this model uses
    # (config) -> None, refusing bad values in those sections
    check_sections: Callable = lambda config: None


def _on_tokens_and_frames(module):
    """A builder for models that read MFCC frames (masked and gain-perturbed in training by ``augment``) and
    tokens through the config's text encoder; or waveforms through the speech encoder that ``audio.encoder``
    names instead of MFCC frames (unless it says ``mfcc``)."""
    def build(config, sizes: dict, rngs: nnx.Rngs, text_encoder: nnx.Module | None = None,
              speech_encoder: nnx.Module | None = None):
        reads_text = "text" in config.model.modalities
        # a pretrained encoder computes in text.dtype, or in bfloat16 with the whole model (model.dtype)
        dtype = config.text.dtype if config.model.dtype == "float32" else config.model.dtype
        if reads_text and text_encoder is not None:
            encoder, hidden = text_encoder, text_encoder.hidden_size
        else:
            encoder, hidden = (build_text_encoder(config.text, dtype=dtype, max_tokens=config.features.max_tokens,
                                                  dropout=config.model.dropout, frozen=config.train.freeze_encoder,
                                                  vocab_size=sizes["vocab_size"], rngs=rngs) if reads_text else (None, 0))
        a = config.augment
        masks = {k: a[k] for k in ("freq_masks", "freq_width", "time_masks", "time_width")}  # speeds: in the data
        augment = SpecAugment(**masks, rngs=rngs) if a.freq_masks or a.time_masks else None
        params = MfccParams.from_config(config.features)
        gain = RandomGain(a.gain_db, n_mels=params.n_mels, frames=params.kind, rngs=rngs) if a.gain_db else None
        speech = {}
        if config.audio.encoder != "mfcc" and "audio" in config.model.modalities:
            speech["speech"] = build_speech_branch(config.audio, dtype=config.model.dtype,
                                                   frozen=config.train.freeze_audio_encoder, rngs=rngs,
                                                   encoder=speech_encoder)
        return module.build(config.model, num_classes=sizes["num_classes"], n_mfcc=frame_features(config.features),
                            text_encoder=encoder, text_hidden=hidden, augment=augment, gain=gain, rngs=rngs,
                            **speech)
    return build


def _on_utterance_vectors(module):
    """A builder for models that read LPGNet's utterance vectors (dialogue batches)."""
    def build(config, sizes: dict, rngs: nnx.Rngs, text_encoder: None = None, speech_encoder: None = None):
        # reads vectors, not tokens or waveforms
        return module.build(config.model, num_classes=sizes["num_classes"], text_dim=sizes.get("text_dim", 0),
                            audio_dim=sizes.get("audio_dim", 0), rngs=rngs)
    return build


def _read_modalities(config) -> set[str]:
    return set(config.model.modalities.split("+"))


def _vector_sources(config) -> set[str]:
    """The corpus modalities that utterance vectors come from (imported emotion2vec vectors read no audio)."""
    used = _read_modalities(config)
    if config.utterance_features.audio == "emotion2vec":
        used.discard("audio")
    return used


# LPGNet's utterance features (papers/lpgnet.md, Section 4.2), computed per fold from its training part.
UTTERANCE_FEATURES = dict(
    # finetuned_cls | finetuned_mean: text.encoder fine-tuned on the utterance task (the paper: BERT-base,
    # [CLS]); finetuned_hidden: that model's classifier input (extractor_d_model wide, after its
    # projection and hidden layer); frozen_cls | frozen_mean: the encoder as it is
    text="finetuned_cls",
    # emotion2vec: 768-dim utterance vectors from audio_dir/<utterance id>.npy (the paper's);
    # bilstm: the mean BiLSTM state of the audio-only utterance model; mfcc_stats: MFCC mean and std;
    # speech_frozen: the speech encoder audio.encoder as it is, its audio.layer states (or the mean of all
    # layers for "weighted") averaged over real frames; speech_finetuned: the mean projected state of the
    # audio-only utterance model that fine-tunes audio.encoder
    audio="bilstm",
    audio_dir="",
    # how the utterance-level extractors (finetuned_*, bilstm) train: the dynamic-fusion model, unimodal
    extractor_epochs=10,
    extractor_batch_size=32,
    extractor_lr=1e-3,
    extractor_encoder_lr=2e-5,
    extractor_d_model=256,
    extractor_dropout=0.1,
    extractor_class_weights="none",  # none | balanced | sqrt: the extractor's loss weighted by class (train.class_weights)
    extractor_ema_decay=0.0,  # d > 0: the vectors come from a moving average of the extractor's parameters (train.ema_decay)
    # cross_fit_folds = K > 1: the training part's vectors come out of fold (K extractors, each trained
    # without one K-th of the training dialogues, gives that K-th its vectors), so they are no cleaner
    # than the test part's; validation and test vectors come from the extractor trained on all of it
    cross_fit_folds=0,
)

TEXT_FEATURES = ("finetuned_cls", "finetuned_mean", "finetuned_hidden", "frozen_cls", "frozen_mean")
AUDIO_FEATURES = ("bilstm", "mfcc_stats", "emotion2vec", "speech_frozen", "speech_finetuned")


def check_utterance_features(config) -> None:
    """Refuse utterance-feature names that no extractor knows, and a speech encoder without speech features
    (or the reverse), naming the field."""
    section = config.utterance_features
    for field, allowed in (("text", TEXT_FEATURES), ("audio", AUDIO_FEATURES)):
        if section[field] not in allowed:
            raise ValueError(f"utterance_features.{field} = {section[field]!r}: must be one of {list(allowed)}")
    if section.audio.startswith("speech") != (config.audio.encoder != "mfcc"):
        raise ValueError(f"utterance_features.audio = {section.audio!r} with audio.encoder = {config.audio.encoder!r}: "
                         "speech_frozen / speech_finetuned read the speech encoder audio.encoder names, and only they do")
    if section.extractor_class_weights not in CLASS_WEIGHT_NAMES:
        raise ValueError(f"utterance_features.extractor_class_weights = {section.extractor_class_weights!r}: must be "
                         f"one of {list(CLASS_WEIGHT_NAMES)}")
    if not 0 <= section.extractor_ema_decay < 1:
        raise ValueError(f"utterance_features.extractor_ema_decay = {section.extractor_ema_decay!r}: must be in [0, 1) "
                         "(0: off)")
    if section.cross_fit_folds < 0 or section.cross_fit_folds == 1:
        raise ValueError(f"utterance_features.cross_fit_folds = {section.cross_fit_folds}: 0 (off) or at least 2")


MODELS = {
    "dynamic_fusion": ModelSpec(dynamic_fusion.DEFAULTS, dynamic_fusion.check, _read_modalities,
                                _on_tokens_and_frames(dynamic_fusion)),
    "lpgnet": ModelSpec(lpgnet.DEFAULTS, lpgnet.check, _vector_sources, _on_utterance_vectors(lpgnet),
                        objective="self_distillation", level="dialogue",
                        sections={"utterance_features": UTTERANCE_FEATURES},
                        check_sections=check_utterance_features),
    # LPGNet (Frame), Table 2: one utterance's tokens and MFCC frames (or a speech encoder's), padded or
    # truncated to model.length
    "lpgnet_frame": ModelSpec(lpgnet_frame.DEFAULTS, lpgnet_frame.check, _read_modalities,
                              _on_tokens_and_frames(lpgnet_frame), objective="self_distillation"),
    # LPGNet's Table 2 linear baseline: the same utterance vectors, one utterance at a time
    "linear": ModelSpec(linear.DEFAULTS, linear.check, _vector_sources, _on_utterance_vectors(linear),
                        level="dialogue", sections={"utterance_features": UTTERANCE_FEATURES},
                        check_sections=check_utterance_features),
}


def get_model_spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"model.name = {name!r}: must be one of {sorted(MODELS)}")
    return MODELS[name]


def build_model(config, sizes: dict, seed: int | None = None, *, text_encoder: nnx.Module | None = None,
                speech_encoder: nnx.Module | None = None) -> nnx.Module:
    """The model ``config.model.name`` names, initialised from `seed` (default ``config.seed``).

    `sizes` holds what the data decides: num_classes, and vocab_size / text_dim / audio_dim as the model
    needs. `text_encoder` and `speech_encoder`, if given, replace the ones ``config.text`` and
    ``config.audio`` name (an exported model's, built from its saved encoder configs without the
    original checkpoints).

    ``model.init = "torch"`` re-initialises the new layers as PyTorch's defaults would (layers/torch_init.py),
    from the same seeded ``params`` stream; a pretrained text or speech encoder keeps its checkpoint's weights.
    """
    spec = get_model_spec(config.model.name)
    rngs = model_rngs(config.seed if seed is None else seed)
    model = spec.build(config, sizes, rngs, text_encoder, speech_encoder)
    if config.model.init == "torch":
        pretrained_text = text_encoder is not None or config.text.encoder != SMALL_TRANSFORMER
        torch_init(model, rngs, skip=(*model.audio_encoder_modules, *(model.encoder_modules if pretrained_text else ())))
    return model
