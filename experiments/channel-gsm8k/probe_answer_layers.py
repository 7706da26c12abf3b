"""Can the thought audit's answer probe read the answer where it surely is, and at which layers does it live?

The positive control for the audit's ``answer`` probe (docs/experiments/channel-gsm8k.md): the oracle's
assistant (SmolLM2-135M-Instruct, the default) reads each of 160 held-back GSM8K training questions followed by
"The correct final answer is X."; the audit's 5-fold ridge probe reads the parity of X from the assistant's
hidden state at the answer's last token and at the full stop after it, layer by layer (30: the last block
after the final norm, the state SoftCoT reads). Run from the repository root (about a minute on 2 CPU cores):

    python experiments/channel-gsm8k/probe_answer_layers.py [MODEL_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from latentreason.assembly.registry import Registry
from latentreason.evaluation.probe import probe, question_properties
from latentreason_softcot.oracle import ANSWER_TEXT

OFFSET, LIMIT = 1100, 160
"""Held-back GSM8K training rows (the audits' rows, past every training and validation row)."""

LAYERS = (4, 8, 12, 16, 20, 24, 28, 30)


def main(folder: str) -> None:
    """Print the parity probe's accuracy per position and layer, with the majority class's share."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    task = Registry().get("task", "gsm8k")
    examples = task.load("train", offset=OFFSET, limit=LIMIT)
    questions = [task.format_question(ex) for ex in examples]
    digit, stop = [], []
    for ex, question in zip(examples, questions):
        told = f"{question}\n\n{ANSWER_TEXT.format(answer=ex.answer)}"  # what the oracle's assistant reads
        head = told[: told.rindex(ex.answer) + len(ex.answer)]  # up to the answer's last character
        ids = tokenizer(told, return_tensors="pt")["input_ids"]  # (1, T)
        with torch.no_grad():
            states = torch.stack(model(ids, output_hidden_states=True).hidden_states)[:, 0]  # (L+1, T, d)
        digit.append(states[:, len(tokenizer(head)["input_ids"]) - 1])  # (L+1, d)
        stop.append(states[:, -1])  # (L+1, d) at the full stop
    labels = question_properties(questions, [ex.answer for ex in examples])["answer"]  # (Q,)
    for name, states in (("answer's last token", torch.stack(digit)), ("full stop after it", torch.stack(stop))):
        for layer in LAYERS:
            score = probe(states[:, layer, None, :], labels)  # (Q, 1, d)
            print(f"{name}, layer {layer}: parity {score.accuracy:.2f} (chance {score.chance:.2f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path.home() / ".cache/latentreason/models/smollm2-135m-instruct"))
