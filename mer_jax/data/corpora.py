"""Reading the corpus a config names: from its folder by its reader (`mer_jax.data.readers`), or from its
tensorflow-datasets records (`mer_jax.data.tfds_datasets`)."""

from __future__ import annotations

from mer_jax.data.labels import label_set_of
from mer_jax.data.readers import READERS
from mer_jax.data.records import ReadReport, Utterance
from mer_jax.errors import ConfigError


def read_corpus(data_config, *, needs_audio: bool = True, needs_text: bool = True) -> tuple[list[Utterance], ReadReport]:
    """Read the corpus a config's ``data`` section names, raising or skipping bad input as it asks; from
    its tensorflow-datasets records when ``data.tfds`` names them (built from ``data.root`` on first use).

    A manifest's audio (transcript) column may be absent or empty when the model hears no audio (reads
    no text): `needs_audio` / `needs_text` False."""
    if data_config.get("tfds"):
        from mer_jax.data.tfds_datasets import read_records  # noqa: PLC0415 (imports TensorFlow)

        return read_records(data_config)
    if data_config.corpus not in READERS:
        raise ConfigError(f"unknown corpus {data_config.corpus!r}; known: {sorted(READERS)}")
    label_set = label_set_of(data_config)
    options = {"manifest": dict(require_audio=needs_audio, require_transcript=needs_text),
               # MELD's two label columns: the label set says which one the run classifies
               "meld": dict(target="sentiment" if data_config.label_set == "meld_sentiment3" else "emotion"),
               }.get(data_config.corpus, {})
    return READERS[data_config.corpus](data_config.root, label_set=label_set,
                                       on_error="skip" if data_config.skip_bad_input else "raise", **options)
