"""Flax NNX text encoders (BERT, DeBERTa-v2/v3) and speech encoders (wav2vec2, HuBERT, WavLM,
data2vec-audio) that load Hugging Face checkpoints, and emotion2vec, which loads FunASR checkpoints.

    encoder, hf_config = from_pretrained("microsoft/deberta-v3-base", dtype=jnp.bfloat16)
    tokenizer = load_tokenizer("microsoft/deberta-v3-base")
    out = encoder(ids, mask)          # out.last_hidden_state (B, L, H), out.cls, out.pooled

    encoder, hf_config = from_pretrained("facebook/wav2vec2-large-lv60")
    batch = load_preprocessor("facebook/wav2vec2-large-lv60")(waveforms, sampling_rate=16000)
    out = encoder(batch["input_values"], batch["attention_mask"], output_hidden_states=True)
    # out.last_hidden_state (B, F, H), out.frame_mask (B, F), out.hidden_states

Encoders follow NNX conventions: dropout draws from the `dropout` RNG stream (`nnx.reseed(encoder,
dropout=key)`), `.train()` / `.eval()` toggle it. Freezing is the optimiser's business.
"""

from mer_jax.encoders.bert import BertConfig, BertEncoder
from mer_jax.encoders.checkpoint import CheckpointMismatchError, load_weights, read_tensors
from mer_jax.encoders.deberta import DebertaV2Config, DebertaV2Encoder
from mer_jax.encoders.emotion2vec import Emotion2vecConfig, Emotion2vecEncoder
from mer_jax.encoders.factory import (encoder_config, from_config, from_pretrained, load_preprocessor, load_tokenizer,
                                     read_config, save_configs)
from mer_jax.encoders.speech import SpeechConfig, SpeechEncoder, SpeechEncoderOutput, WaveformPreprocessor
from mer_jax.encoders.wav2vec2 import Data2VecAudioEncoder, HubertEncoder, Wav2Vec2Encoder
from mer_jax.encoders.wavlm import WavLMConfig, WavLMEncoder

__all__ = [
    "BertConfig",
    "BertEncoder",
    "CheckpointMismatchError",
    "Data2VecAudioEncoder",
    "DebertaV2Config",
    "DebertaV2Encoder",
    "Emotion2vecConfig",
    "Emotion2vecEncoder",
    "HubertEncoder",
    "SpeechConfig",
    "SpeechEncoder",
    "SpeechEncoderOutput",
    "Wav2Vec2Encoder",
    "WavLMConfig",
    "WavLMEncoder",
    "WaveformPreprocessor",
    "encoder_config",
    "from_config",
    "from_pretrained",
    "load_preprocessor",
    "load_tokenizer",
    "load_weights",
    "read_config",
    "read_tensors",
    "save_configs",
]
