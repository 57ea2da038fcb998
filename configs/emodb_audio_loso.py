"""EmoDB, audio only (MFCC + BiLSTM), 7 classes, leave-one-speaker-out (10 folds).

Real emotional speech (Berlin Database of Emotional Speech, 535 utterances, 10 actors). The text is
one of ten fixed German sentences, so only the audio branch is used. Each fold tests one unseen
speaker; the checkpoint is chosen on 10% of the other nine speakers' utterances.
"""

from mer_jax.config import base_config


def get_config():
    c = base_config()
    c.data.corpus = "emodb"
    c.data.root = "../shared/data/emodb"
    c.data.label_set = "emodb7"
    c.features.max_frames = 400  # 4 s at 10 ms; EmoDB utterances last 1.2-9 s, 2.8 s on average
    c.features.max_tokens = 16
    c.split.protocol = "loso"
    c.split.validation_fraction = 0.1
    c.model.modalities = "audio"
    c.model.d_model = 128
    c.model.dropout = 0.3
    c.train.epochs = 40
    c.train.batch_size = 32
    c.train.lr = 1e-3
    c.train.weight_decay = 1e-4
    return c
