"""How much of a trained method's loss on the gold targets could the slots lower: the rationale or the answer line?

Teacher-forces the gold rationale and answer of held-back training rows through a finished cell's method
(its results folder's config.yaml: producer, injector, adapter, checkpoint) and splits the per-token NLL into
the rationale and the final line ("The final answer is \\boxed{X}." and the end of turn), once with the
method's own thoughts and once with the next problem's. An answer-weighted loss can only pull the LLM
towards the slots if the answer line's loss is large and depends on them. Run from the repository root
(one real-model job: it takes the machine's cores for a few minutes):

    python experiments/channel-gsm8k/answer_line_nll.py CELL_FOLDER [ROWS]

Prints one JSON object: per thought source, the mean NLL per token and the sum per example of each part.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from latentreason.assembly.prepare import prepare
from latentreason.components.batching import position_ids
from latentreason.components.injector import IGNORE_INDEX
from latentreason.config import RunConfig
from latentreason.training.trainer import gold_targets

OFFSET = 1500  # the channel study's held-back rows, past every training and audit row
BATCH = 8


def answer_start(tokenizer, text: str) -> int:
    """How many of ``text``'s tokens come before its last line."""
    newline = text.rstrip().rfind("\n")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return sum(1 for start, _ in offsets if start <= newline)


def main(cell: Path, rows: int) -> dict[str, dict[str, float]]:
    raw = yaml.safe_load((cell / "config.yaml").read_text())
    raw.pop("label", None)
    raw["data"].update(split="train", offset=OFFSET, limit=rows)
    torch.set_grad_enabled(False)
    prepared = prepare(RunConfig.model_validate(raw))
    pipeline, examples = prepared.pipeline, prepared.examples
    for module in pipeline.trainable().values():
        module.train(False)
    llm = pipeline.runtime.llm
    targets = gold_targets(pipeline, examples, 512)
    result = {}
    for source in ("own", "next"):
        pipeline.config.thoughts_from = source
        parts: dict[str, list[torch.Tensor]] = {"rationale": [], "answer line": []}
        for start in range(0, len(examples), BATCH):
            batch = examples[start : start + BATCH]
            inputs = pipeline.inputs(batch, [targets[e.id] for e in batch], training=False)
            hidden = llm.model.base_model(
                inputs_embeds=inputs.inputs_embeds,
                attention_mask=inputs.attention_mask,
                position_ids=position_ids(inputs.attention_mask),  # as training's forward: padding takes no position
                use_cache=False,
            ).last_hidden_state  # (B, T, d_llm)
            labels = inputs.labels[:, 1:]  # (B, T-1): token t is predicted at t-1
            logits = llm.model.lm_head(hidden[:, :-1]).float()  # (B, T-1, V)
            nll = F.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")  # (B, T-1)
            for row, example in enumerate(batch):
                values = nll[row, labels[row] != IGNORE_INDEX]  # (len(target),)
                k = answer_start(llm.tokenizer, pipeline.task.target_text(example))
                parts["rationale"].append(values[:k])
                parts["answer line"].append(values[k:])
        result[source] = {}
        for part, pieces in parts.items():
            values = torch.cat(pieces)
            result[source][f"{part} nll per token"] = values.mean().item()
            result[source][f"{part} nll per example"] = values.sum().item() / len(examples)
            result[source][f"{part} tokens"] = values.numel()
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 32), indent=1))
