"""Text tokenizers: a Hugging Face tokenizer by name or folder, or a word vocabulary fitted on a corpus.

The fitted vocabulary is for encoders trained from scratch (the demo); pretrained encoders use the
tokenizer saved with their checkpoint. Either way the result is a `transformers` fast tokenizer that
is saved with the run, so inference (and a resumed run) tokenizes exactly as training did.
"""

from __future__ import annotations

import collections
import os

from mer_jax.errors import ConfigError

os.environ.setdefault("USE_TF", "0")

WORDS = "words"
SMALL_TRANSFORMER = "transformer"  # the text encoder trained from scratch, which reads fitted words
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def fit_word_vocabulary(texts: list[str], min_count: int = 1):
    """A lower-casing, BERT-pre-tokenized word-level tokenizer over the words of `texts`.

    The vocabulary is ordered by count, then alphabetically, so the same texts always give the same ids.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = collections.Counter(word for text in texts for word, _ in
                                 pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def tokenizer_name(text) -> str:
    """A config's ``text.tokenizer`` with ``auto`` resolved: a fitted word vocabulary for the small
    transformer, the checkpoint's own tokenizer for a pretrained encoder."""
    if text.tokenizer != "auto":
        return text.tokenizer
    return WORDS if text.encoder == SMALL_TRANSFORMER else text.encoder


def get_tokenizer(spec: str, training_texts: list[str]):
    """`words` fits a vocabulary on `training_texts`; anything else is a Hugging Face name or local folder."""
    if spec == WORDS:
        return fit_word_vocabulary(training_texts)
    from transformers import AutoTokenizer  # noqa: PLC0415

    try:
        return AutoTokenizer.from_pretrained(spec)
    except OSError as e:  # no such folder, or a hub name that cannot be fetched
        raise ConfigError(f"text.encoder / text.tokenizer = {spec!r}: no tokenizer could be loaded ({e})") from None
