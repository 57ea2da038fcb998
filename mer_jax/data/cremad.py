"""Reader for CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset) audio.

The release (github.com/CheyneyComputerScience/CREMA-D, fetched with git-lfs) has the audio in
``AudioWAV/`` as ``1001_DFA_ANG_XX.wav``: actor (1001-1091), sentence code, emotion, level (LO, MD,
HI, or XX for unspecified). Actor demographics are in ``VideoDemographics.csv`` beside it; without
that file (e.g. in re-distributions that have only the wavs) every actor's sex is 'unknown'.

Each of the twelve sentences carries no emotion; the transcript is the sentence's text. Speaker =
session = the actor number. A clone without git-lfs has pointer files instead of audio: each is
reported as a problem that says so. The release's issue tracker reports a few broken or silent clips
(e.g. actor 1076's ``MTI_NEU`` and ``MTI_SAD``): unreadable or empty files are problems (read with
``on_error="skip"`` to leave them out and count them); the reader checks headers, not content, so
a silent but well-formed clip is kept. The release is 16 kHz: a file at another rate is a problem.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from mer_jax.data.audio import SAMPLE_RATE
from mer_jax.data.corpus import Collector, decode_name, find_audio_folder, list_wavs
from mer_jax.data.labels import LabelSet
from mer_jax.data.records import OnError, ReadReport, Utterance

CORPUS = "cremad"

EMOTIONS = {
    "ANG": "anger", "DIS": "disgust", "FEA": "fear",
    "HAP": "happiness", "NEU": "neutral", "SAD": "sadness",
}  # fmt: skip
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
DEMOGRAPHICS = "VideoDemographics.csv"
_SEXES = {"male": "m", "female": "f"}

_NAME = re.compile(r"(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{2})")
_EXPECTED = "ActorID_Sentence_Emotion_Level, like 1001_DFA_ANG_XX.wav"


def read_cremad(
    root,
    *,
    label_set: str | LabelSet | None = None,
    on_error: OnError = "raise",
) -> tuple[list[Utterance], ReadReport]:
    """Read CREMA-D from `root` (the release folder holding ``AudioWAV/``, or ``AudioWAV/`` itself).

    Labels are readable codes (`EMOTIONS` values: 'anger', 'disgust', ...); `label_set` (e.g.
    "cremad6") keeps only the codes it maps. The utterance id is the file stem, which also keeps the
    level. Actor sex is in ``report.speaker_sex``.
    """
    root = Path(root)
    collector = Collector(CORPUS, label_set=label_set, on_error=on_error, sample_rate=SAMPLE_RATE)
    audio_folder = find_audio_folder(root, "AudioWAV")
    # Beside AudioWAV/ in the release; also found when `root` is AudioWAV/ itself.
    for demographics in (root / DEMOGRAPHICS, audio_folder.parent / DEMOGRAPHICS):
        if demographics.is_file():
            collector.speaker_sex.update(_read_sexes(demographics, collector))
            break
    for path in list_wavs(audio_folder, collector):
        fields = decode_name(
            path, _NAME, _EXPECTED, collector,
            sentence=SENTENCES, emotion=EMOTIONS, level=LEVELS,
        )  # fmt: skip
        if fields is None:
            continue
        collector.add(
            Utterance(
                utterance_id=path.stem,
                corpus=CORPUS,
                label=EMOTIONS[fields["emotion"]],
                transcript=SENTENCES[fields["sentence"]],
                audio_path=str(path),
                speaker=fields["actor"],
                session=fields["actor"],
            )
        )
    return collector.finish()


def _read_sexes(path: Path, collector: Collector) -> dict[str, str]:
    """Actor id -> 'm' / 'f' from ``VideoDemographics.csv``; bad rows are problems naming the line."""
    sexes = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"ActorID", "Sex"} - set(reader.fieldnames or ())
        if missing:
            collector.problem(path, f"missing column(s) {', '.join(sorted(missing))}", 1)
            return sexes
        for row in reader:
            actor, sex = (row["ActorID"] or "").strip(), (row["Sex"] or "").strip().lower()
            if not actor or sex not in _SEXES:
                collector.problem(path, f"bad row: ActorID {actor!r}, Sex {row['Sex']!r}", reader.line_num)
                continue
            sexes[actor] = _SEXES[sex]
    return sexes
