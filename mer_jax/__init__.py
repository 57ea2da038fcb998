"""mer_jax: multimodal (speech + text) emotion recognition in JAX/Flax."""

__version__ = "0.1.0"
