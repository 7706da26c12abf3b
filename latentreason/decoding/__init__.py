"""Decoding: the continuous-batching loop (:mod:`.loop`) over a rewritable cache
(:mod:`.state`), ``transformers``' ``generate()`` (:mod:`.generate`), segment
boundaries for controllers (:mod:`.segments`, :mod:`.trigger`) and the vLLM
engine (:mod:`.vllm`, :mod:`.vllm_worker`)."""

# The names latentreason 0.1's ``latentreason.decoding`` module had.
from latentreason.components.decoder import DecodingController
from latentreason.decoding.loop import decode, decode_stream
from latentreason.decoding.state import DecodeState

__all__ = ["DecodeState", "DecodingController", "decode", "decode_stream"]
