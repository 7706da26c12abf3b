"""The vLLM side of ``generation.engine: vllm``: a process in vLLM's own environment.

Run as a script (``python vllm_worker.py``) by :mod:`latentreason.decoding.vllm_engine`
with the Python of an environment that has vLLM. It imports only the standard
library, torch, safetensors and vLLM, never latentreason, whose requirements
(transformers >= 5.24) vLLM's pins exclude.

Protocol, over the process's stdin and its original stdout (vLLM's own
output is sent to stderr): each message is an 8-byte big-endian length and a
JSON object; a ``generate`` request is followed by one more length-prefixed
safetensors blob holding ``embeds.<i>`` ``(T_i, d)`` per prompt.

* ``{"op": "start", "model": DIR, "dtype": ..., "max_num_seqs": ..., "max_model_len": ...}``
  -> ``{"ok": true, "seconds": ...}``
* ``{"op": "generate", "count": n, "sampling": [{...}, ...]}`` + blob, with
  one dict of ``SamplingParams`` per prompt -> ``{"ok": true, "tokens": [[id, ...], ...]}``
* ``{"op": "stop"}`` ends the process.

Any failure is answered ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from typing import Any

# Run as a script, its own folder leads sys.path, where the package's modules must not shadow what it imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


def _read(stream) -> bytes:
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (size,) = struct.unpack(">Q", head)
    return stream.read(size)


def _write(stream, payload: bytes) -> None:
    stream.write(struct.pack(">Q", len(payload)) + payload)
    stream.flush()


def _reply(stream, message: dict) -> None:
    _write(stream, json.dumps(message).encode("utf-8"))


def main() -> None:
    """Serve requests until ``stop`` or the end of stdin."""
    protocol = os.fdopen(os.dup(1), "wb")  # keep the real stdout for replies ...
    os.dup2(2, 1)  # ... and send everything printed (vLLM's logs) to stderr
    requests = sys.stdin.buffer
    engine: Any = None
    while True:
        try:
            message = json.loads(_read(requests))
        except EOFError:
            return
        try:
            if message["op"] == "stop":
                return
            if message["op"] == "start":
                started = time.perf_counter()
                from vllm import LLM

                engine = LLM(
                    model=message["model"],
                    dtype=message["dtype"],
                    enable_prompt_embeds=True,
                    max_num_seqs=message["max_num_seqs"],
                    max_model_len=message["max_model_len"],
                    seed=message.get("seed", 0),
                )
                _reply(protocol, {"ok": True, "seconds": time.perf_counter() - started})
            elif message["op"] == "generate":
                from safetensors.torch import load
                from vllm import SamplingParams

                tensors = load(_read(requests))
                prompts = [{"prompt_embeds": tensors[f"embeds.{i}"]} for i in range(message["count"])]
                sampling = [SamplingParams(**params) for params in message["sampling"]]
                outputs = engine.generate(prompts, sampling, use_tqdm=False)
                _reply(protocol, {"ok": True, "tokens": [list(o.outputs[0].token_ids) for o in outputs]})
            else:
                _reply(protocol, {"ok": False, "error": f"unknown op {message['op']!r}"})
        except Exception as exc:  # the caller turns it into a user-facing error
            _reply(protocol, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
