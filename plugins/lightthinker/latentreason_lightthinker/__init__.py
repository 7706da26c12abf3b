"""Decoding-time plugins for latentreason: LightThinker-style compression and re-injection."""
