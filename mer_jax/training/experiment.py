"""The data side of an experiment, as a config describes it: corpus, audio features and folds.

Training and re-evaluation both start here, so a finished run's test part is rebuilt exactly.
"""

from __future__ import annotations

import dataclasses

from mer_jax.data.corpora import read_corpus
from mer_jax.data.examples import Examples, utterance_examples
from mer_jax.data.features import AudioFeatures, MfccParams, audio_features, normalize_per_speaker, waveform_features
from mer_jax.data.labels import LabelSet, label_set_of
from mer_jax.data.records import ReadReport, Utterance
from mer_jax.data.splits import Split, make_splits
from mer_jax.errors import ConfigError
from mer_jax.models.registry import get_model_spec


@dataclasses.dataclass(frozen=True)
class ExperimentData:
    utterances: list[Utterance]
    report: ReadReport
    label_set: LabelSet
    audio: AudioFeatures | None  # MFCCs of every utterance; None when the model does not hear MFCCs
    splits: list[Split]
    waveforms: AudioFeatures | None = None  # every utterance's waveform, for a speech encoder (audio.encoder)
    sped_up: dict[float, AudioFeatures] = dataclasses.field(default_factory=dict)  # augment.speeds: MFCCs per speed


def read_model_corpus(config):
    """`read_corpus` for what the config's model reads: a text-only model needs no audio, an audio-only
    one no transcripts."""
    modalities = get_model_spec(config.model.name).modalities(config)
    return read_corpus(config.data, needs_audio="audio" in modalities, needs_text="text" in modalities)


def load_experiment_data(config) -> ExperimentData:
    """Read the corpus, compute (or load cached) MFCCs when the model hears audio (or decode the waveforms
    when a speech encoder hears it), and make the folds."""
    uses_audio = "audio" in get_model_spec(config.model.name).modalities(config)
    utterances, report = read_model_corpus(config)
    if uses_audio and any(u.audio_path is None for u in utterances):
        raise ConfigError(f"model.modalities = {config.model.modalities!r} needs audio, but {report.corpus} "
                          "has utterances without audio; use model.modalities = 'text'")
    hears_waveforms = uses_audio and config.audio.encoder != "mfcc"
    waveforms = waveform_features(utterances, max_samples(config.features)) if hears_waveforms else None
    uses_mfcc = uses_audio and not hears_waveforms
    perturbations = [f"augment.{name} = {config.augment[name]!r}" for name in ("speeds", "gain_db")
                     if config.augment[name]]
    if perturbations and (not uses_mfcc or get_model_spec(config.model.name).level != "utterance"):
        raise ConfigError(f"{' and '.join(perturbations)} perturbs the MFCC frames of an utterance-level model; this "
                          "model reads none (a text-only or dialogue-level model, or audio.encoder a speech checkpoint)")
    if config.augment.gain_db and config.features.speaker_normalization:
        raise ConfigError("augment.gain_db perturbs each utterance's level, which features.speaker_normalization "
                          "takes away per speaker; use one of them")
    params = MfccParams.from_config(config.features)
    speeds = (1.0, *config.augment.speeds) if uses_mfcc else ()
    audio = {s: audio_features(utterances, dataclasses.replace(params, speed=float(s)), config.data.cache_dir)
             for s in speeds}
    if config.features.speaker_normalization:
        audio = {s: normalize_per_speaker(a, [u.speaker for u in utterances]) for s, a in audio.items()}
    splits = make_splits(utterances, config.split.protocol, seed=config.split.seed, test_fraction=config.split.test_fraction,
                         validation_fraction=config.split.validation_fraction,
                         test_sessions=tuple(config.split.test_sessions),
                         unit=get_model_spec(config.model.name).level)  # dialogue models keep dialogues whole
    return ExperimentData(utterances, report, label_set_of(config.data), audio.pop(1.0, None), splits, waveforms,
                          sped_up=audio)


def max_samples(features) -> int:
    """The longest waveform a speech encoder hears: the MFCC path's cap in samples (max_frames hops)."""
    return features.max_frames * features.hop_length


def examples_of(config, data: ExperimentData, indices, tokenizer, *, speed: float = 1.0) -> Examples:
    """The model-ready examples of `data.utterances[indices]` (audio if loaded, at `speed` if that is one of
    ``augment.speeds``; tokens if a tokenizer is given)."""
    return utterance_examples(data.utterances, indices, data.label_set,
                              audio=data.audio if speed == 1.0 else data.sped_up[speed],
                              max_frames=config.features.max_frames, waveforms=data.waveforms,
                              max_samples=max_samples(config.features), tokenizer=tokenizer,
                              max_tokens=config.features.max_tokens, context_turns=config.text.context_turns)
