"""Shared fixtures: a small synthetic IEMOCAP-layout corpus, quiet TensorFlow / transformers, and a
persistent JAX compilation cache shared by the test processes and the commands they start (many tests
compile the same tiny programs; the cache changes no number)."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "mer_jax_test_jit_cache"))

import pytest  # noqa: E402

from mer_jax.data.demo import write_demo_corpus  # noqa: E402


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A small demo corpus (5 sessions x 2 dialogues x 12 turns), written once per test session."""
    return write_demo_corpus(tmp_path_factory.mktemp("demo"), seed=3, dialogues_per_session=2, turns_per_dialogue=12)
