"""Models, and a registry from a config's model name to a constructed model."""
