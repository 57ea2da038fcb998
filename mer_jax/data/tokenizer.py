"""Text tokenizers: a Hugging Face tokenizer by name or folder, or a small WordPiece fitted on a corpus.

The fitted WordPiece is for encoders trained from scratch (the demo); pretrained encoders use the
tokenizer saved with their checkpoint. Either way the result is a `transformers` fast tokenizer that
is saved with the run, so inference tokenizes exactly as training did.
"""

from __future__ import annotations

import os

os.environ.setdefault("USE_TF", "0")

WORDPIECE = "wordpiece"


def fit_wordpiece(texts: list[str], vocab_size: int = 2000):
    """A lower-casing BERT-style WordPiece tokenizer learned from `texts` (the training transcripts)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special,
                                                             show_progress=False))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def get_tokenizer(spec: str, training_texts: list[str]):
    """`wordpiece` fits one on `training_texts`; anything else is a Hugging Face name or local folder."""
    if spec == WORDPIECE:
        return fit_wordpiece(training_texts)
    from transformers import AutoTokenizer  # noqa: PLC0415

    return AutoTokenizer.from_pretrained(spec)
