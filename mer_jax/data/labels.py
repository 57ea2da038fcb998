"""Label sets: which corpus label codes form which classes.

A label set maps a corpus' own label codes to class names, in class-index order. Codes that are not
in the map are excluded from the experiment (and counted by the reader's report).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class LabelSet:
    name: str
    classes: tuple[str, ...]
    code_to_class: dict[str, str]

    def index(self, code: str) -> int | None:
        """Class index of a corpus label code, or None when the code is excluded."""
        cls = self.code_to_class.get(code)
        return None if cls is None else self.classes.index(cls)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes as a person reads them (``exc`` -> ``excitement``), in class-index order."""
        return tuple(READABLE.get(c, c) for c in self.classes)


# IEMOCAP's label codes as words, for what people read (pages, printed predictions, model cards, an exported
# model's id2label); files of predictions and metrics keep the codes.
READABLE = {"ang": "anger", "hap": "happiness", "exc": "excitement", "neu": "neutral", "sad": "sadness",
            "fru": "frustration", "fea": "fear", "sur": "surprise", "dis": "disgust", "oth": "other"}


LABEL_SETS = {
    # LPGNet and most IEMOCAP work: excited merged into happy; 5531 utterances on the real release.
    "iemocap4": LabelSet(
        "iemocap4",
        ("ang", "hap", "neu", "sad"),
        {"ang": "ang", "hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad"},
    ),
    # The dynamic-fusion paper's six high-frequency emotions; 7380 utterances on the real release.
    "iemocap6": LabelSet(
        "iemocap6",
        ("ang", "fru", "neu", "sad", "exc", "hap"),
        {c: c for c in ("ang", "fru", "neu", "sad", "exc", "hap")},
    ),
}

# Public corpora, every emotion of each, classes in alphabetical order. Their label codes are the
# readers' own: readable names decoded from each corpus' file-name codes (EmoDB, RAVDESS, CREMA-D),
# or MELD's labels as written (7 emotions with read_meld(target="emotion"), 3 sentiments with
# target="sentiment").
for _name, _classes in {
    "emodb7": ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness"),
    "ravdess8": ("anger", "calm", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"),
    "cremad6": ("anger", "disgust", "fear", "happiness", "neutral", "sadness"),
    "meld7": ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"),
    "meld_sentiment3": ("negative", "neutral", "positive"),
}.items():
    LABEL_SETS[_name] = LabelSet(_name, _classes, {c: c for c in _classes})
del _name, _classes


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise ValueError(f"unknown label set {name!r}; known: {sorted(LABEL_SETS)}") from None


def label_set_of(data) -> LabelSet:
    """The label set a config's ``data`` section asks for: ``label_set``, its codes replaced by
    ``label_map`` ("code=class,..." onto the label set's classes; other codes are excluded and counted)
    when one is given, e.g. EmoDB's ``anger=ang,happiness=hap,neutral=neu,sadness=sad`` for a model
    trained on iemocap4."""
    base = get_label_set(data.label_set)
    if not data.get("label_map"):
        return base
    mapping = {}
    for pair in data.label_map.split(","):
        code, _, name = (part.strip() for part in pair.partition("="))
        if not code or name not in base.classes:
            raise ValueError(f"data.label_map entry {pair!r}: must be code=class with a class of {base.name} "
                             f"{list(base.classes)}")
        mapping[code] = name
    return LabelSet(f"{base.name} (label_map {data.label_map})", base.classes, mapping)
