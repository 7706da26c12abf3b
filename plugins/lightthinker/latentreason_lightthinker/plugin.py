"""Entry point of the LightThinker plugin.

It registers no components yet: compression needs a decoding-time hook in the
core, which is planned (see docs/decisions.md).
"""
