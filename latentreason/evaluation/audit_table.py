"""The thought audits of a comparison's cells, as a section of its report.

A cell's audit is ``audit.json`` in its results folder (e.g. written by
``latentreason thoughts --config <cell>/config.yaml --split train --offset N
--out <cell>/audit.json``), else, for a cell with its own thoughts
(``thoughts_from: own``), ``audit.json`` in the folder of one of its
checkpoint files: the audit ``latentreason train`` wrote at the end of the
training that made those weights (checkpoint paths are read from the cell's
stored config, relative to the working directory, as the run read them). An
ablation cell gets only its own folder's audit: the training's audit
describes the method's own thoughts, not what the ablation feeds the LLM.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from latentreason.evaluation.audit import AUDIT_FILE, Audit, read_audit

if TYPE_CHECKING:
    from latentreason.evaluation.tables import Cell


def audit_file(cell: Cell) -> Path | None:
    """Where ``cell``'s audit is (see the module's docstring), or None."""
    if cell.folder is not None and (cell.folder / AUDIT_FILE).is_file():
        return cell.folder / AUDIT_FILE
    if cell.config.get("thoughts_from", "own") != "own":
        return None
    checkpoint = cell.config.get("checkpoint")
    paths = [checkpoint] if isinstance(checkpoint, str) else list(checkpoint or [])
    return next((Path(p).parent / AUDIT_FILE for p in paths if (Path(p).parent / AUDIT_FILE).is_file()), None)


def audit_table(cells: list[Cell]) -> list[str]:
    """One Markdown line per cell with an audit: its key numbers at the last stage audited, and where it came from.

    Empty when no cell has one.
    """
    found: list[tuple[Cell, Path, Audit]] = [
        (cell, path, read_audit(path)) for cell in cells if (path := audit_file(cell)) is not None
    ]
    if not found:
        return []
    lines = [
        "thought audits (held-back training questions; share, cosine, rank and probe at the last stage audited, "
        "normally what the LLM receives; see `latentreason thoughts`):",
        "",
        "| task | method | seed | rows | stage | question-specific share | cosine | effective rank "
        "| probe accuracy (chance) | attention on thoughts / before | audit |",
        "|" + "---|" * 11,
    ]
    for cell, path, audit in found:
        last = audit.final
        attention = f"{audit.attention.thoughts:.3f} / {audit.attention.before:.3f}" if audit.attention else "-"
        lines.append(
            f"| {cell.summary.task} | {cell.summary.method} | {cell.summary.seed} | {audit.rows()} | {last.stage} "
            f"| {last.specific_share:.3g} | {last.cosine:.5f} | {last.effective_rank:.1f} "
            f"| {audit.probe_text(last.stage)} | {attention} | {path} |"
        )
    return lines
