"""Reader for the Berlin Database of Emotional Speech (EmoDB), from its file names alone.

The official download (``download.zip``) has the audio in ``wav/``; each name encodes the utterance:
``03a01Fa.wav`` = speaker ``03``, sentence ``a01``, emotion letter ``F`` (German initial: Freude),
version ``a``. The reader decodes the names itself (a user's download has no label index); it does
not need ``lablaut/``, ``labsilb/``, ``silb/`` or ``erkennung.txt``.

Every speaker says the same ten German sentences, so the transcript carries no emotion; it is filled
in from the sentence code. Speaker = session = the two-digit speaker number (leave-one-speaker-out
holds out one of 10). Speaker sex comes from the corpus documentation (`SPEAKERS`) and is reported
in ``report.speaker_sex``.
"""

from __future__ import annotations

import re
from mer_jax.data.audio import SAMPLE_RATE
from mer_jax.data.corpus import Collector, decode_name, find_audio_folder, list_wavs
from mer_jax.data.labels import LabelSet
from mer_jax.data.records import OnError, ReadReport, Utterance

CORPUS = "emodb"

EMOTIONS = {  # German initials used in the file names
    "W": "anger",  # Wut/Ärger
    "L": "boredom",  # Langeweile
    "E": "disgust",  # Ekel
    "A": "fear",  # Angst
    "F": "happiness",  # Freude
    "T": "sadness",  # Trauer
    "N": "neutral",
}

# Speaker number -> (sex, age), as documented with the corpus.
SPEAKERS = {
    "03": ("m", 31), "08": ("f", 34), "09": ("f", 21), "10": ("m", 32), "11": ("m", 26),
    "12": ("m", 30), "13": ("f", 32), "14": ("f", 35), "15": ("m", 25), "16": ("f", 31),
}  # fmt: skip

# The ten sentences. For a05 the documentation says "Stück Papier", but the corpus' own syllable
# labels (silb/*a05*.silb) show that the speakers said "Blatt Papier"; the transcript follows them.
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Blatt Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}

_NAME = re.compile(r"(?P<speaker>\d\d)(?P<sentence>[a-z]\d\d)(?P<emotion>[A-Za-z])(?P<version>[a-z])")
_EXPECTED = "speaker, sentence, emotion letter, version, like 03a01Fa.wav"


def read_emodb(
    root,
    *,
    label_set: str | LabelSet | None = None,
    on_error: OnError = "raise",
) -> tuple[list[Utterance], ReadReport]:
    """Read EmoDB from `root` (the download's folder holding ``wav/``, or ``wav/`` itself).

    Labels are readable codes (`EMOTIONS` values: 'anger', 'boredom', ...); `label_set` (e.g.
    "emodb7") keeps only the codes it maps. Malformed names, unknown speaker/sentence/emotion codes
    and unreadable audio or audio not at the release's 16 kHz are problems naming the file.
    """
    collector = Collector(CORPUS, label_set=label_set, on_error=on_error, sample_rate=SAMPLE_RATE)
    for path in list_wavs(find_audio_folder(root, "wav"), collector):
        fields = decode_name(
            path, _NAME, _EXPECTED, collector,
            speaker=SPEAKERS, sentence=SENTENCES, emotion=EMOTIONS,
        )  # fmt: skip
        if fields is None:
            continue
        speaker = fields["speaker"]
        collector.speaker_sex[speaker] = SPEAKERS[speaker][0]
        collector.add(
            Utterance(
                utterance_id=path.stem,
                corpus=CORPUS,
                label=EMOTIONS[fields["emotion"]],
                transcript=SENTENCES[fields["sentence"]],
                audio_path=str(path),
                speaker=speaker,
                session=speaker,
            )
        )
    return collector.finish()

