"""The vLLM side of ``generation.engine: vllm``: a process in vLLM's own environment.

Run as a script (``python vllm_worker.py PARENT_PID``) by :mod:`latentreason.decoding.vllm_engine`
with the Python of an environment that has vLLM. It imports only the standard
library, torch, safetensors and vLLM, never latentreason, whose requirements
(transformers >= 5.24) vLLM's pins exclude.

It leads a process group of its own, which vLLM's processes (EngineCore and
its Worker) join. When the parent is gone, however it ended (SIGKILL
included; a watchdog thread sees it within :data:`WATCH_S`), or when the
worker receives SIGTERM, it kills the whole group at once (SIGKILL): nothing
of the run keeps computing for a dead parent. Python's resource tracker,
which vLLM's processes register their shared memory with (about 0.4 GB), is
started before the group and stays out of it: once the group is gone it
unlinks that memory, and exits.

Protocol, over the process's stdin and its original stdout (vLLM's own
output is sent to stderr): each message is an 8-byte big-endian length and a
JSON object; a ``generate`` request is followed by one more length-prefixed
safetensors blob holding ``embeds.<i>`` ``(T_i, d)`` per prompt.

* ``{"op": "start", "model": DIR, "dtype": ..., "max_num_seqs": ..., "max_model_len": ..., "seed": ..., "progress": bool}``
  -> ``{"ok": true, "seconds": ...}``
* ``{"op": "generate", "count": n, "sampling": [{...}, ...]}`` + blob, with
  one dict of ``SamplingParams`` per prompt (its ``seed`` dropped on the CPU: :func:`own_seed`) -> one ``{"ok": true, "index": i, "tokens": [id, ...]}``
  per prompt, as soon as vLLM finishes it (in any order), then ``{"ok": true, "done": true}``
* ``{"op": "stop"}`` ends the process.

Any failure is answered ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
import multiprocessing.resource_tracker
import os
import signal
import struct
import sys
import threading
import time
from typing import Any

# Run as a script, its own folder leads sys.path, where the package's modules must not shadow what it imports.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

WATCH_S = 0.1
"""How often the watchdog checks that the parent is alive."""


def _end_group(*_: object) -> None:
    """Kill this process group: the worker and every process vLLM started, at once."""
    os.killpg(0, signal.SIGKILL)


def _watch(parent: int) -> None:
    """End the group once ``parent`` is no longer this process's parent (it ended; the child was re-parented)."""
    while os.getppid() == parent:
        time.sleep(WATCH_S)
    _end_group()


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


def own_seed(sampling: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requests' ``SamplingParams`` fields, without their per-request ``seed`` where vLLM runs on the CPU.

    A seeded request gets a generator of its own, and vLLM rewinds it when a
    sampled token is discarded (a prompt whose prefill is split over steps)
    with ``set_offset``, which only CUDA generators have: on the CPU the
    engine dies ("CPU Generator does not use offset"). There the engine's
    seed (``LLM(seed=...)``) draws for every request instead.
    """
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return sampling
    return [{k: v for k, v in params.items() if k != "seed"} for params in sampling]


def _generate(engine: Any, prompts: list[dict], sampling: list, protocol) -> None:
    """Decode ``prompts`` as ``LLM.generate`` does (the same requests, the same steps), replying per finished one."""
    # vLLM reports a request under the id it was given; enqueue returns that id with "-<8 random characters>" added
    index = {
        request.rsplit("-", 1)[0]: i for i, request in enumerate(engine.enqueue(prompts, sampling, use_tqdm=False))
    }
    while engine.llm_engine.has_unfinished_requests():
        for output in engine.llm_engine.step():
            if output.finished:
                tokens = list(output.outputs[0].token_ids)
                _reply(protocol, {"ok": True, "index": index[output.request_id], "tokens": tokens})
    _reply(protocol, {"ok": True, "done": True})


def main() -> None:
    """Serve requests until ``stop``, the end of stdin, SIGTERM or the parent's end."""
    multiprocessing.resource_tracker.ensure_running()  # before the group: it cleans up after the group is killed
    os.setsid()  # a process group of this worker and the processes vLLM starts
    signal.signal(signal.SIGTERM, _end_group)
    threading.Thread(target=_watch, args=(int(sys.argv[1]),), daemon=True).start()
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
                    use_tqdm_on_load=message.get("progress", True),
                )
                _reply(protocol, {"ok": True, "seconds": time.perf_counter() - started})
            elif message["op"] == "generate":
                from safetensors.torch import load
                from vllm import SamplingParams

                tensors = load(_read(requests))
                prompts = [{"prompt_embeds": tensors[f"embeds.{i}"]} for i in range(message["count"])]
                _generate(engine, prompts, [SamplingParams(**p) for p in own_seed(message["sampling"])], protocol)
            else:
                _reply(protocol, {"ok": False, "error": f"unknown op {message['op']!r}"})
        except Exception as exc:  # the caller turns it into a user-facing error
            _reply(protocol, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
