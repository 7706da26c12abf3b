"""``generation.engine: vllm``: the same prompts, decoded by vLLM in its own environment.

The pipeline builds each prompt's ``inputs_embeds`` exactly as for the
transformers engine (producer, projector, injector, and a latent prefix
computed with transformers); vLLM receives them as prompt embeddings
(``enable_prompt_embeds``) and writes the chains, with a LoRA adapter merged
into the weights it loads. Only methods whose whole input is known before
the LLM writes can run here; a decoding controller, which chooses inputs or
rewrites the cache while the LLM writes, needs the transformers engine.

vLLM pins transformers below the version this project needs, so it lives in
an environment of its own (``latentreason vllm-setup`` makes one, see
:mod:`latentreason.models.vllm_env`) and runs in
a worker process (:mod:`latentreason.decoding.vllm_worker`) that the main process
talks to over pipes. Its Python is ``$LATENTREASON_VLLM_PYTHON``, else the
environment ``vllm-setup`` made under the cache folder. The worker and vLLM's
own processes end with this process, however it ends (SIGKILL included; see
:mod:`~latentreason.decoding.vllm_worker`), and one machine runs one engine at
a time (:mod:`~latentreason.decoding.vllm_lock`).

Results stream: each example is yielded as soon as vLLM finishes its chains,
and the runner appends it to the results folder then, so a killed run loses
only the chains vLLM was still writing.

Stopping matches the transformers engine: vLLM stops at the end-of-turn
tokens or the token cap, and a chain is then cut where the transformers
engine would have stopped it, at the first token that completes its
``\\boxed{}`` answer (greedy decoding writes the same tokens up to there
either way). Sampling draws vLLM's own random numbers, so sampled chains
differ from the transformers engine's: on a GPU each chain's generator is
seeded from ``seed`` and the chain's place; on the CPU, where vLLM cannot
rewind a chain's own generator, the engine's generator (seeded with
``seed``) draws for all, so a sampled chain also depends on the chains
decoded beside it (a resumed run draws other chains than an uninterrupted one).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.torch import save

from latentreason.decoding.generate import AnswerComplete, Generated, Written
from latentreason.decoding.vllm_lock import hold_engine_lock, record_worker
from latentreason.errors import LatentReasonError
from latentreason.models.merged import merged_folder
from latentreason.models.vllm_env import vllm_python
from latentreason.models.zoo import cache_root

if TYPE_CHECKING:
    from latentreason.components.example import Example
    from latentreason.components.injector import LLMInputs
    from latentreason.config import GenerationConfig
    from latentreason.models.adapter import Adapter
    from latentreason.models.spec import LoadedModel

WORKER = Path(__file__).with_name("vllm_worker.py")
CHUNK_EXAMPLES = 64
"""Examples whose prompts are built and handed to vLLM at once (each is yielded as soon as its chains are done)."""


class VLLMWorker:
    """A vLLM worker process serving one model (see :mod:`latentreason.decoding.vllm_worker`).

    The worker leads a process group of its own, which vLLM's processes join,
    and ends that group when this process ends, however it ends (SIGKILL
    included); :meth:`close` ends it too. It inherits the machine's engine lock
    (:mod:`latentreason.decoding.vllm_lock`), so a second run cannot start an
    engine beside it.

    Args:
        python: the interpreter of vLLM's environment.
        model: the model folder (safetensors, as ``save_pretrained`` writes).
        dtype: the weight dtype.
        max_num_seqs: chains decoded at once.
        max_model_len: prompt plus generated tokens, at most.
        seed: vLLM's engine seed.
        quiet: no progress bars, and vLLM logs warnings only.

    Raises:
        LatentReasonError: another run's vLLM engine is running on this machine, or vLLM failed to start.
    """

    def __init__(
        self, python: str, model: str, dtype: str, max_num_seqs: int, max_model_len: int, seed: int, quiet: bool = False
    ) -> None:
        lock = hold_engine_lock()
        threads = os.cpu_count() or 1
        env = {
            "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", f"0-{threads - 1}"),
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "4"),
            "VLLM_CACHE_ROOT": os.environ.get("VLLM_CACHE_ROOT", str(cache_root() / "vllm-cache")),
        } | ({"VLLM_LOGGING_LEVEL": "WARNING"} if quiet else {})
        self.process = subprocess.Popen(
            [python, str(WORKER), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **env},
            pass_fds=(lock,),
        )
        record_worker(self.process.pid)
        self.busy = False
        atexit.register(self.close)
        self._send_message(
            {
                "op": "start",
                "model": model,
                "dtype": dtype,
                "max_num_seqs": max_num_seqs,
                "max_model_len": max_model_len,
                "seed": seed,
                "progress": not quiet,
            }
        )
        self.startup_s = self._receive()["seconds"]

    def _send(self, payload: bytes) -> None:
        assert self.process.stdin is not None  # opened with PIPE
        self.process.stdin.write(struct.pack(">Q", len(payload)) + payload)
        self.process.stdin.flush()

    def _send_message(self, message: dict[str, Any], blob: bytes | None = None) -> None:
        try:
            self._send(json.dumps(message).encode("utf-8"))
            if blob is not None:
                self._send(blob)
        except OSError as exc:  # BrokenPipeError included
            raise LatentReasonError(f"The vLLM worker stopped ({exc}); its log is above (stderr).") from exc

    def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None  # opened with PIPE
        try:
            head = self.process.stdout.read(8)
            if len(head) < 8:
                raise BrokenPipeError("the worker ended")
            reply = json.loads(self.process.stdout.read(struct.unpack(">Q", head)[0]))
        except OSError as exc:
            raise LatentReasonError(f"The vLLM worker stopped ({exc}); its log is above (stderr).") from exc
        if not reply.get("ok"):
            raise LatentReasonError(f"vLLM failed: {reply.get('error')}")
        return reply

    def generate(self, prompts: list, sampling: list[dict[str, Any]]) -> Iterator[tuple[int, list[int]]]:
        """``(i, token ids)`` written for each prompt embedding ``(T_i, d)``, with its sampling parameters.

        Each is yielded as soon as vLLM finishes it, in the order vLLM does.
        A request left unfinished (the caller stopped reading, or vLLM failed)
        closes the worker: its replies would answer the next request.
        """
        blob = save({f"embeds.{i}": p.detach().cpu().contiguous() for i, p in enumerate(prompts)})
        self.busy = True
        try:
            self._send_message({"op": "generate", "count": len(prompts), "sampling": sampling}, blob)
            while "done" not in (reply := self._receive()):
                yield reply["index"], reply["tokens"]
            self.busy = False
        finally:
            if self.busy:
                self.close()

    def close(self) -> None:
        """Stop the worker and every process vLLM started.

        An idle worker is asked to stop (vLLM shuts down in order, within
        30 s); then whatever is left of its process group (all of it, for a
        busy worker) is killed.
        """
        if self.process.poll() is None and not self.busy:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self._send(json.dumps({"op": "stop"}).encode("utf-8"))
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # nothing of the group is left
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.kill()  # in case it ended before leading its group
        self.process.wait()


_WORKERS: dict[tuple, VLLMWorker] = {}


def worker_for(
    llm: LoadedModel, generation: GenerationConfig, dtype: str, seed: int, adapter: Adapter | None = None
) -> VLLMWorker:
    """The worker serving ``llm`` (started once per model and settings, then shared while it runs).

    An LLM with a LoRA adapter is served from a folder with the adapter merged
    into its weights (:func:`~latentreason.models.merged.merged_folder`).

    It is quiet (no progress bars, vLLM's warnings only) when transformers'
    progress bars are off, as ``--quiet`` turns them off.

    Args:
        llm: the run's LLM (vLLM reads its folder).
        generation: the run's generation settings (the token cap and batch size size the engine).
        dtype: the weight dtype.
        seed: vLLM's engine seed.
        adapter: the LLM's LoRA adapter, or None.
    """
    from transformers.utils import logging as hf_logging

    if adapter is None and not Path(llm.source).is_dir():
        raise LatentReasonError(
            f"generation.engine: vllm reads the LLM from a model folder; {llm.source!r} is not one "
            "(convert a .gguf model once with `latentreason models fetch` or save_pretrained)."
        )
    python = vllm_python()
    source = llm.source if adapter is None else str(merged_folder(llm, adapter, cache_root() / "merged"))
    positions = int(getattr(llm.model.config, "max_position_embeddings", 4096))
    tokens = min(positions, max(4096, generation.max_new_tokens + 2048))  # prompt + chain
    key = (python, source, dtype, generation.batch_size, seed)
    if key not in _WORKERS or _WORKERS[key].process.poll() is not None:
        print(f"[latentreason] starting vLLM ({python}) ...", file=sys.stderr, flush=True)
        _WORKERS[key] = VLLMWorker(
            python,
            source,
            dtype,
            generation.batch_size,
            tokens,
            seed,
            quiet=not hf_logging.is_progress_bar_enabled(),
        )
        print(f"[latentreason] vLLM ready in {_WORKERS[key].startup_s:.0f} s", file=sys.stderr, flush=True)
    return _WORKERS[key]


def cut_at_answer(ids: list[int], checker: AnswerComplete | None) -> list[int]:
    """``ids`` up to the first token at which ``checker`` sees a complete answer (all of them if none)."""
    if checker is not None:
        for end in range(1, len(ids) + 1):
            if checker.finished([ids[:end]])[0]:
                return ids[:end]
    return ids


def vllm_chains(
    prompts: Callable[[list[Example]], LLMInputs],
    examples: list[Example],
    llm: LoadedModel,
    generation: GenerationConfig,
    *,
    dtype: str,
    seed: int,
    stop: re.Pattern[str] | None,
    adapter: Adapter | None = None,
) -> Iterator[Written]:
    """Each example's chains, written by vLLM; chains are cut where ``stop`` first matches.

    ``prompts`` builds a chunk's LLM inputs (the pipeline's producer, projector
    and injector); they are built and handed to vLLM :data:`CHUNK_EXAMPLES`
    examples at a time, and an example is yielded as soon as vLLM has finished
    all its chains, so a killed run loses only the examples vLLM was still writing.

    Args:
        prompts: the LLM inputs of some examples (``group`` chains per example).
        examples: what to answer.
        llm: the run's LLM (its folder, tokenizer and end-of-turn tokens).
        generation: the token cap, sampling and batch size.
        dtype: the weight dtype.
        seed: the run's seed (vLLM's engine seed; each chain's sampling seed derives from it).
        stop: a chain stops once this matches its text (None: at end of turn or the cap only).
        adapter: the LLM's LoRA adapter (merged into the weights vLLM loads), or None.

    Raises:
        LatentReasonError: vLLM is not set up.
    """
    if not examples:  # a resumed run with nothing left (or an empty rank) starts no engine
        return
    worker = worker_for(llm, generation, dtype, seed, adapter)
    stops = llm.eos_token_ids
    checker = AnswerComplete(llm.tokenizer, stop) if generation.stop_at_answer and stop is not None else None
    clock = time.perf_counter()
    for start in range(0, len(examples), CHUNK_EXAMPLES):
        chunk = examples[start : start + CHUNK_EXAMPLES]
        inputs = prompts(chunk)
        mask = inputs.attention_mask.bool()
        embeds = [inputs.inputs_embeds[r][mask[r]] for r in range(mask.shape[0])]  # (T_r, d) without padding
        sampling = [
            {
                "max_tokens": generation.max_new_tokens,
                "stop_token_ids": stops,
                "skip_special_tokens": True,
                "temperature": generation.temperature if generation.do_sample else 0.0,
                "top_p": generation.top_p if generation.do_sample else 1.0,
                "seed": seed * 1_000_003 + start * inputs.group + r,
            }
            for r in range(len(embeds))
        ]
        k = inputs.group  # chains per example, rows n*k .. n*k+k-1
        written: dict[int, dict[int, Generated]] = {}
        for row, tokens in worker.generate(embeds, sampling):
            ids = cut_at_answer(tokens, checker)
            n, length = len(ids), embeds[row].shape[0]
            answered = checker is not None and bool(ids) and checker.finished([ids])[0]
            truncated = n >= generation.max_new_tokens and ids[-1] not in stops and not answered
            text = llm.tokenizer.decode(ids, skip_special_tokens=True)
            chains = written.setdefault(row // k, {})
            chains[row % k] = Generated(text, ids, length + n, n * length + n * (n + 1) // 2, truncated)
            if len(chains) == k:
                now = time.perf_counter()
                example = row // k
                yield Written(chunk[example], inputs.prompts[example * k], [chains[c] for c in range(k)], now - clock)
                del written[example]
                clock = now
