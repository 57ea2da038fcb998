"""tensorflow-datasets builders for every supported corpus, and reading them back as utterances.

Each builder runs the project's own reader once over a corpus folder and writes one record per
utterance: the waveform exactly as training decodes it (float32, mono, 16 kHz, resampled where the
file is not), the transcript, the corpus' own emotion code and one class-index field per label set
that applies (-1 where the label set leaves the utterance out), speaker, session, dialogue, turn,
times and V/A/D. Splits follow the group that speaker-independent protocols hold out (IEMOCAP's
``session1`` ... ``session5``, EmoDB's speakers, RAVDESS' and CREMA-D's actors, MELD's official
train/dev/test), so TFDS split syntax composes leave-one-out folds (``session1+session2+...``).

Training reads the records with ``data.tfds = <name>`` (`read_records`): the utterances come back in
the reader's order with ``tfds:`` audio paths that `mer_jax.data.audio` streams from the records, so
a run gives the same metrics as one over the folder. Importing this module registers the builders
(``mer_iemocap``, ``mer_demo``, ``mer_emodb``, ``mer_ravdess``, ``mer_cremad``, ``mer_meld``) for
``tfds.load`` and ``tfds build --imports mer_jax.data.tfds_datasets``.
"""

from __future__ import annotations

import collections
import math
import pathlib
import tarfile
import tempfile

import jax
import numpy as np

from mer_jax.data import tf_runtime  # noqa: F401 (TensorFlow, quietly, before tensorflow_datasets imports it)

import tensorflow_datasets as tfds  # noqa: E402

from mer_jax.data.audio import SAMPLE_RATE, load_audio
from mer_jax.data.corpus import CorpusReport
from mer_jax.data.demo import write_demo_corpus
from mer_jax.data.labels import LabelSet, get_label_set
from mer_jax.data.readers import READERS
from mer_jax.data.records import OnError, Problem, Utterance
from mer_jax.data.tfds_audio import record_path

_CITATION_IEMOCAP = """@article{busso2008iemocap,
  title={IEMOCAP: Interactive emotional dyadic motion capture database},
  author={Busso, Carlos and Bulut, Murtaza and Lee, Chi-Chun and others},
  journal={Language Resources and Evaluation}, volume={42}, pages={335--359}, year={2008}}"""


class CorpusBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """One record per utterance of a corpus that a project reader (`READERS[corpus]`) reads."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: waveform, transcript, labels, speaker, session, dialogue, turn."}
    corpus: str  # the reader's name
    label_sets: tuple[str, ...]  # one class-index field per label set, named after it
    description: str
    homepage = ""
    citation = ""

    def __init__(self, *, on_error: OnError = "raise", **kwargs):
        """`on_error` = "skip" leaves bad utterances out of the records and lists them in the dataset
        info's metadata (``skipped``), as the reader's report would."""
        self.on_error = on_error
        super().__init__(**kwargs)

    # Records keep the reader's order, so reading them back gives the utterances in the same order.
    def _info(self) -> tfds.core.DatasetInfo:
        exact = dict(dtype=np.float64, encoding=tfds.features.Encoding.BYTES)  # the reader's values, bit for bit
        features = {
            "utterance_id": tfds.features.Text(),
            "order": np.int64,  # position in the reader's list of the whole corpus
            "audio": tfds.features.Audio(shape=(None,), dtype=np.float32, sample_rate=SAMPLE_RATE, file_format=None),
            "has_audio": np.bool_,
            "transcript": tfds.features.Text(),
            "emotion": tfds.features.Text(),  # the corpus' own label code (IEMOCAP 'exc', MELD 'joy', ...)
            **{name: tfds.features.ClassLabel(names=get_label_set(name).classes) for name in self.label_sets},
            "speaker": tfds.features.Text(),
            "session": tfds.features.Text(),
            "dialogue_id": tfds.features.Text(),  # '' where the corpus has no dialogues
            "turn_index": np.int64,  # -1 where the corpus has no dialogues
            "start": tfds.features.Tensor(shape=(), **exact),  # seconds; NaN where unknown
            "end": tfds.features.Tensor(shape=(), **exact),
            "vad": tfds.features.Tensor(shape=(3,), **exact),  # valence, activation, dominance; NaN: none
            "scripted": np.int64,  # 1 scripted, 0 improvised, -1 unknown
            "partition": tfds.features.Text(),  # the corpus' official part (MELD), else ''
        }
        return self.dataset_info_from_configs(
            description=self.description,
            features=tfds.features.FeaturesDict(features),
            homepage=self.homepage,
            citation=self.citation,
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,
        )

    def _corpus_root(self, dl_manager) -> pathlib.Path:
        """The folder the reader reads; by default the manual download folder."""
        root = dl_manager.manual_dir
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such folder. {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        return pathlib.Path(root)

    def _split_generators(self, dl_manager):
        utterances, report = READERS[self.corpus](self._corpus_root(dl_manager), label_set=None, on_error=self.on_error)
        self.info.metadata["skipped"] = [str(problem) for problem in report.skipped]
        parts = collections.defaultdict(list)
        for order, utterance in enumerate(utterances):
            parts[self._split_of(utterance)].append((order, utterance))
        return {name: self._generate_examples(items) for name, items in self._with_protocol_splits(parts).items()}

    def _split_of(self, utterance: Utterance) -> str:
        return _split_name(utterance.partition or utterance.session)

    def _with_protocol_splits(self, parts: dict) -> dict:
        """Extra splits for the papers' protocols (IEMOCAP's seeded train/test); none by default."""
        return dict(parts)

    def _generate_examples(self, items):
        for order, u in items:
            wave = load_audio(u.audio_path) if u.audio_path is not None else np.zeros(0, np.float32)
            yield u.utterance_id, {
                "utterance_id": u.utterance_id,
                "order": order,
                "audio": wave,
                "has_audio": u.audio_path is not None,
                "transcript": u.transcript,
                "emotion": u.label,
                **{name: _class_index(get_label_set(name), u.label) for name in self.label_sets},
                "speaker": u.speaker,
                "session": u.session,
                "dialogue_id": u.dialogue_id or "",
                "turn_index": -1 if u.turn_index is None else u.turn_index,
                "start": np.nan if u.start is None else u.start,
                "end": np.nan if u.end is None else u.end,
                "vad": np.asarray(u.vad if u.vad is not None else (np.nan,) * 3, np.float64),
                "scripted": -1 if u.scripted is None else int(u.scripted),
                "partition": u.partition or "",
            }


class _IemocapLayout(CorpusBuilder, skip_registration=True):
    """IEMOCAP-layout corpora: splits session1 ... session5, plus the dynamic-fusion paper's
    seeded random 80:20 train/test split of its six classes (seed 0) as ``train`` / ``test``."""

    corpus = "iemocap"
    label_sets = ("iemocap4", "iemocap6")

    def _split_of(self, utterance: Utterance) -> str:
        return f"session{int(utterance.session.removeprefix('Ses'))}"

    def _with_protocol_splits(self, parts: dict) -> dict:
        from mer_jax.data.splits import make_splits  # noqa: PLC0415

        six_class = get_label_set("iemocap6")
        items = sorted((item for part in parts.values() for item in part if six_class.index(item[1].label) is not None),
                       key=lambda item: item[0])
        split = make_splits([u for _, u in items], "random", seed=0, test_fraction=0.2, validation_fraction=0.0)[0]
        train = np.sort(np.concatenate([split.train, split.validation]))
        return {**parts, "train": [items[i] for i in train], "test": [items[i] for i in np.sort(split.test)]}


class MerIemocap(_IemocapLayout):
    """IEMOCAP (Busso et al., 2008): 10039 utterances of 10 actors in 5 dyadic sessions."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    IEMOCAP is licensed by USC SAIL (https://sail.usc.edu/iemocap/). Place the release you received in
    manual_dir: either the extracted `IEMOCAP_full_release/` folder (holding Session1 ... Session5), that
    folder itself as manual_dir, or the `IEMOCAP_full_release*.tar.gz` archive."""
    description = ("IEMOCAP, read by mer_jax's reader: every evaluated utterance (all label codes, xxx and oth "
                   "included), 16 kHz float32 waveforms.")
    homepage = "https://sail.usc.edu/iemocap/"
    citation = _CITATION_IEMOCAP

    def _corpus_root(self, dl_manager) -> pathlib.Path:
        return find_iemocap_release(super()._corpus_root(dl_manager), dl_manager)


class MerDemo(_IemocapLayout):
    """The synthetic IEMOCAP-layout demo corpus (`mer_jax.data.demo`, seed 0), generated by the builder."""

    description = "mer_jax's synthetic demo corpus in IEMOCAP's layout (5 sessions, 720 utterances); NOT IEMOCAP."

    def _corpus_root(self, dl_manager) -> pathlib.Path:
        return write_demo_corpus(pathlib.Path(dl_manager.download_dir) / "mer_demo_corpus")


class MerEmodb(CorpusBuilder):
    """Berlin EmoDB: 535 utterances of 10 speakers; splits ``speaker03`` ... ``speaker16``."""

    corpus = "emodb"
    label_sets = ("emodb7",)
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Download EmoDB (http://emodb.bilderbar.info/download/download.zip), extract "
                                    "it, and pass the folder holding `wav/` as manual_dir.")
    description = "Berlin Database of Emotional Speech, read by mer_jax's reader."
    homepage = "http://emodb.bilderbar.info/"

    def _split_of(self, utterance: Utterance) -> str:
        return f"speaker{utterance.session}"


class MerRavdess(CorpusBuilder):
    """RAVDESS speech: 1440 utterances of 24 actors; splits ``actor01`` ... ``actor24``."""

    corpus = "ravdess"
    label_sets = ("ravdess8",)
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Download Audio_Speech_Actors_01-24.zip from https://zenodo.org/record/1188976, "
                                    "extract it, and pass the folder holding `Actor_01/` ... as manual_dir.")
    description = "RAVDESS speech, read by mer_jax's reader (resampled from 48 kHz to 16 kHz)."
    homepage = "https://zenodo.org/record/1188976"

    def _split_of(self, utterance: Utterance) -> str:
        return f"actor{utterance.session}"


class MerCremad(CorpusBuilder):
    """CREMA-D: 7442 utterances of 91 actors; splits ``actor1001`` ... ``actor1091``."""

    corpus = "cremad"
    label_sets = ("cremad6",)
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Clone https://github.com/CheyneyComputerScience/CREMA-D with git-lfs and pass "
                                    "the clone (holding `AudioWAV/`) as manual_dir.")
    description = "CREMA-D, read by mer_jax's reader."
    homepage = "https://github.com/CheyneyComputerScience/CREMA-D"

    def _split_of(self, utterance: Utterance) -> str:
        return f"actor{utterance.session}"


class MerMeld(CorpusBuilder):
    """MELD's text (13708 utterances of Friends dialogues); the official ``train`` / ``dev`` / ``test``."""

    corpus = "meld"
    label_sets = ("meld7",)
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Download MELD's CSVs (https://github.com/declare-lab/MELD, data/MELD/*_sent_emo.csv) "
                                    "and pass their folder as manual_dir.")
    description = "MELD, text only (has_audio is False), read by mer_jax's reader; labels are the 7 emotions."
    homepage = "https://affective-meld.github.io/"


BUILDERS = {cls.name: cls for cls in (MerIemocap, MerDemo, MerEmodb, MerRavdess, MerCremad, MerMeld)}


def find_iemocap_release(root: pathlib.Path, dl_manager=None) -> pathlib.Path:
    """The folder holding Session1 ... under `root`: `root` itself, ``root/IEMOCAP_full_release``, or the
    release extracted from an ``IEMOCAP_full_release*.tar.gz`` / ``.tar`` archive in `root` (or `root` itself)."""
    for candidate in (root, root / "IEMOCAP_full_release"):
        if (candidate / "Session1").is_dir():
            return candidate
    archives = [root] if root.is_file() else sorted(root.glob("IEMOCAP*.tar*"))
    if archives and tarfile.is_tarfile(archives[0]):
        extracted = (pathlib.Path(dl_manager.extract(archives[0])) if dl_manager is not None
                     else _extract(archives[0]))
        found = sorted(extracted.glob("**/Session1"))
        if found:
            return found[0].parent
    raise FileNotFoundError(f"{root}: no IEMOCAP release found; looked for {root}/Session1, "
                            f"{root}/IEMOCAP_full_release/Session1 and an IEMOCAP*.tar.gz archive. "
                            + " ".join(MerIemocap.MANUAL_DOWNLOAD_INSTRUCTIONS.split()))


def _extract(archive: pathlib.Path) -> pathlib.Path:
    target = pathlib.Path(tempfile.mkdtemp(prefix="iemocap_"))
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def _split_name(group: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in group.lower())


def _class_index(label_set: LabelSet, code: str) -> int:
    index = label_set.index(code)
    return -1 if index is None else index


# --- reading records back as utterances ---


def dataset_builder(data) -> CorpusBuilder:
    """The builder a config's ``data`` section names (``data.tfds``), built from ``data.root`` if its
    records are not yet in ``data.tfds_data_dir``."""
    if data.tfds not in BUILDERS:
        raise ValueError(f"data.tfds = {data.tfds!r}: must be one of {sorted(BUILDERS)}")
    if BUILDERS[data.tfds].corpus != data.corpus:
        raise ValueError(f"data.tfds = {data.tfds!r} holds a {BUILDERS[data.tfds].corpus!r} corpus, but "
                         f"data.corpus = {data.corpus!r}")
    def make():
        return BUILDERS[data.tfds](data_dir=data.tfds_data_dir or None,
                                   on_error="skip" if data.skip_bad_input else "raise")

    if jax.process_count() > 1:  # multi-host: process 0 writes the records, the others wait to read them
        from jax.experimental import multihost_utils  # noqa: PLC0415

        if jax.process_index() == 0:
            make().download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data.root))
        multihost_utils.sync_global_devices(f"records of {data.tfds} prepared")
    builder = make()
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=data.root))
    return builder


def read_records(data) -> tuple[list[Utterance], CorpusReport]:
    """The utterances of the records ``data.tfds`` names, in the reader's order, in ``data``'s label set.

    Audio paths point into the records (``tfds:<dir>/<split>#<id>``); `mer_jax.data.tfds_audio` streams them.
    """
    from mer_jax.data.labels import label_set_of  # noqa: PLC0415

    builder = dataset_builder(data)
    label_set = label_set_of(data)
    rows = []
    for split in _corpus_splits(builder):
        records = builder.as_dataset(split=split, decoders={"audio": tfds.decode.SkipDecoding()})
        for record in tfds.as_numpy(records.map(lambda r: {k: v for k, v in r.items() if k != "audio"})):
            rows.append((int(record["order"]), split, record))
    report = CorpusReport(f"{builder.name} {builder.version} (tfds records in {builder.data_dir})")
    utterances = []
    for _, split, r in sorted(rows, key=lambda row: row[0]):
        label = r["emotion"].decode()
        if label_set.index(label) is None:
            report.excluded_labels[label] += 1
            continue
        utterances.append(_utterance(builder, split, r, label))
    report.skipped.extend(Problem(problem, None, "skipped when the records were built")
                          for problem in builder.info.metadata.get("skipped", []))
    report.kept = len(utterances)
    report.label_counts.update(u.label for u in utterances)
    report.speaker_counts.update(u.speaker for u in utterances)
    return utterances, report


def _corpus_splits(builder) -> list[str]:
    """The splits that partition the corpus (not the protocol copies such as IEMOCAP's train/test)."""
    names = list(builder.info.splits)
    if isinstance(builder, _IemocapLayout):
        names = [n for n in names if n.startswith("session")]
    return sorted(names)


def _utterance(builder, split: str, r: dict, label: str) -> Utterance:
    text = {k: r[k].decode() for k in ("utterance_id", "transcript", "speaker", "session", "dialogue_id", "partition")}
    vad = tuple(float(v) for v in r["vad"])
    return Utterance(
        utterance_id=text["utterance_id"],
        corpus=BUILDERS[builder.name].corpus,
        label=label,
        transcript=text["transcript"],
        audio_path=record_path(builder.data_dir, split, text["utterance_id"]) if r["has_audio"] else None,
        speaker=text["speaker"],
        session=text["session"],
        dialogue_id=text["dialogue_id"] or None,
        turn_index=None if r["turn_index"] < 0 else int(r["turn_index"]),
        start=None if math.isnan(r["start"]) else float(r["start"]),
        end=None if math.isnan(r["end"]) else float(r["end"]),
        vad=None if any(math.isnan(v) for v in vad) else vad,
        scripted=None if r["scripted"] < 0 else bool(r["scripted"]),
        partition=text["partition"] or None,
    )
