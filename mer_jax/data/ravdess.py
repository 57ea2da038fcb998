"""Reader for RAVDESS audio (Ryerson Audio-Visual Database of Emotional Speech and Song).

The audio downloads (``Audio_Speech_Actors_01-24.zip``, ``Audio_Song_Actors_01-24.zip``) unpack to
``Actor_01/`` ... ``Actor_24/``, each holding ``03-01-05-02-01-02-12.wav``: modality (03 = audio
only), vocal channel (01 speech, 02 song), emotion, intensity (01 normal, 02 strong), statement,
repetition, actor. Odd-numbered actors are male, even-numbered female.

Both statements carry no emotion; the transcript is the statement's text. Speaker = session = the
two-digit actor number. The file name's actor must match its ``Actor_XX`` folder. Song files are
left out unless ``include_song=True`` (counted as ignored); anything in the root other than
``Actor_XX`` folders (e.g. the nested duplicate copy some re-distributions add) is counted as
ignored too.
"""

from __future__ import annotations

import re
from pathlib import Path

from mer_jax.data.corpus import Collector, decode_name, list_wavs
from mer_jax.data.labels import LabelSet
from mer_jax.data.records import OnError, ReadReport, Utterance

CORPUS = "ravdess"

EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happiness", "04": "sadness",
    "05": "anger", "06": "fear", "07": "disgust", "08": "surprise",
}  # fmt: skip
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
MODALITIES = {"03": "audio-only"}  # 01 (audio-video) and 02 (video-only) are the .mp4 downloads
CHANNELS = {"01": "speech", "02": "song"}
INTENSITIES = {"01": "normal", "02": "strong"}
REPETITIONS = {"01": "first", "02": "second"}

_NAME = re.compile(
    r"(?P<modality>\d\d)-(?P<channel>\d\d)-(?P<emotion>\d\d)-(?P<intensity>\d\d)"
    r"-(?P<statement>\d\d)-(?P<repetition>\d\d)-(?P<actor>\d\d)"
)
_EXPECTED = "modality-channel-emotion-intensity-statement-repetition-actor, like 03-01-05-02-01-02-12.wav"
_ACTOR_FOLDER = re.compile(r"Actor_(\d\d)")


def actor_sex(actor: str) -> str:
    """RAVDESS actors with odd numbers are male ('m'), even numbers female ('f')."""
    return "m" if int(actor) % 2 else "f"


def read_ravdess(
    root,
    *,
    include_song: bool = False,
    label_set: str | LabelSet | None = None,
    on_error: OnError = "raise",
) -> tuple[list[Utterance], ReadReport]:
    """Read RAVDESS audio from `root`, the folder holding ``Actor_01/`` ... ``Actor_24/``.

    Labels are readable codes (`EMOTIONS` values: 'neutral', 'calm', ...); `label_set` (e.g.
    "ravdess8") keeps only the codes it maps. The utterance id is the file stem, which also keeps
    intensity and repetition.
    """
    root = Path(root)
    collector = Collector(CORPUS, label_set=label_set, on_error=on_error)
    folders = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and _ACTOR_FOLDER.fullmatch(path.name):
            folders.append(path)
        else:
            collector.ignore(f"entries of {root.name}/ other than Actor_XX folders")
    if not folders:
        raise FileNotFoundError(f"{root}: no Actor_XX folders (RAVDESS audio unpacks to Actor_01..24/)")
    for folder in folders:
        for path in list_wavs(folder, collector):
            fields = decode_name(
                path, _NAME, _EXPECTED, collector,
                modality=MODALITIES, channel=CHANNELS, emotion=EMOTIONS, intensity=INTENSITIES,
                statement=STATEMENTS, repetition=REPETITIONS,
            )  # fmt: skip
            if fields is None:
                continue
            actor = fields["actor"]
            if folder.name != f"Actor_{actor}":
                collector.problem(path, f"the file name says actor {actor}, its folder {folder.name}")
                continue
            if CHANNELS[fields["channel"]] == "song" and not include_song:
                collector.ignore("song files (include_song=False)")
                continue
            collector.speaker_sex[actor] = actor_sex(actor)
            collector.add(
                Utterance(
                    utterance_id=path.stem,
                    corpus=CORPUS,
                    label=EMOTIONS[fields["emotion"]],
                    transcript=STATEMENTS[fields["statement"]],
                    audio_path=str(path),
                    speaker=actor,
                    session=actor,
                )
            )
    return collector.finish()
