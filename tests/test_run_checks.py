"""What a run checks before it trains, and how its outputs hold odd input: the label column MELD's label
set names, a run folder that a failed start left behind, empty corpora and parts, unloadable tokenizers,
prediction files with commas in ids."""

import csv
import types

import numpy as np
import pytest

from mer_jax.config import base_config, validate
from mer_jax.data.corpora import read_corpus
from mer_jax.data.tokenizer import get_tokenizer
from mer_jax.errors import ConfigError
from mer_jax.training.loop import check_training_parts, write_predictions
from mer_jax.training.workdir import prepare_workdir
from test_readers_synthetic import meld_csv


def test_meld_sentiment_label_set_reads_the_sentiment_column(tmp_path):
    for split in ("train", "dev", "test"):
        meld_csv(tmp_path / f"{split}_sent_emo.csv",
                 '1,"Great news!",Joey,joy,positive,0,0,1,1,"0:00:01,000","0:00:02,000"',
                 '2,"Oh no.",Ross,sadness,negative,0,1,1,1,"0:00:03,000","0:00:04,000"',
                 '3,"Okay.",Ross,neutral,neutral,0,2,1,1,"0:00:05,000","0:00:06,000"')
    data = base_config().data
    data.corpus, data.root = "meld", str(tmp_path)
    for label_set, labels in (("meld_sentiment3", ["positive", "negative", "neutral"]),
                              ("meld7", ["joy", "sadness", "neutral"])):
        data.label_set = label_set
        utterances, report = read_corpus(data, needs_audio=False)
        assert [u.label for u in utterances[:3]] == labels and not report.excluded_labels


def test_a_folder_a_failed_start_left_may_take_another_config(tmp_path):
    config = base_config()
    prepare_workdir(config, tmp_path)  # the run then stopped on bad input: config.json, nothing trained
    config.data.skip_bad_input = True
    prepare_workdir(config, tmp_path)
    (tmp_path / "checkpoints").mkdir()  # once something is trained, a changed config is refused
    config.data.skip_bad_input = False
    with pytest.raises(ConfigError, match="data.skip_bad_input differ"):
        prepare_workdir(config, tmp_path)


@pytest.mark.parametrize("field", ["test_fraction", "validation_fraction"])
def test_split_shares_must_be_inside_zero_one(field):
    config = base_config()
    for bad in (0.0, 1.0, 1.5):
        config.split[field] = bad
        with pytest.raises(ConfigError, match=f"split.{field}"):
            validate(config)


def test_empty_corpus_and_empty_test_part_are_refused_before_training():
    config = base_config()
    utterance = types.SimpleNamespace(label="neu", dialogue_id="d")
    label_set = types.SimpleNamespace(classes=("neu",), index=lambda code: 0)
    empty = types.SimpleNamespace(utterances=[], splits=[], sped_up={}, label_set=label_set)
    with pytest.raises(ConfigError, match="no utterances kept"):
        check_training_parts(config, empty)
    config.train.batch_size = 1
    split = types.SimpleNamespace(train=np.array([0]), validation=np.array([0]), test=np.array([], int))
    no_test = types.SimpleNamespace(utterances=[utterance], splits=[split], sped_up={}, label_set=label_set)
    with pytest.raises(ConfigError, match="the test part is empty"):
        check_training_parts(config, no_test)


def test_a_tokenizer_that_cannot_load_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no tokenizer could be loaded"):
        get_tokenizer(str(tmp_path / "no-such-encoder"), [])


def test_prediction_rows_quote_ids_with_commas(tmp_path):
    examples = types.SimpleNamespace(utterance_ids=lambda: ["a,b", 'say "hi"'], labels=lambda: [0, 1])
    write_predictions(tmp_path / "p.csv", examples, np.array([[0.9, 0.1], [0.2, 0.8]]), ("neu", "ang"))
    with open(tmp_path / "p.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["utterance_id", "label", "prediction", "p_neu", "p_ang"],
                    ["a,b", "neu", "neu", "0.90000", "0.10000"], ['say "hi"', "ang", "ang", "0.20000", "0.80000"]]
