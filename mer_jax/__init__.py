"""mer_jax: multimodal (speech + text) emotion recognition in JAX/Flax.

    from mer_jax import EmotionRecognizer
    EmotionRecognizer.from_run("runs/demo/audio_text").predict("hello.wav", "I love the new job!")
"""

__version__ = "0.1.0"  # the package's version (pyproject.toml reads it from here)


def __getattr__(name: str):
    """`mer_jax.EmotionRecognizer`, imported on first use (it pulls JAX and the models)."""
    if name == "EmotionRecognizer":
        from mer_jax.inference import EmotionRecognizer  # noqa: PLC0415

        return EmotionRecognizer
    raise AttributeError(f"module 'mer_jax' has no attribute {name!r}")
