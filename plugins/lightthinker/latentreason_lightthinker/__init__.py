"""LightThinker-style thought compression for latentreason (experimental)."""
