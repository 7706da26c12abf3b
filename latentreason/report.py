"""Render a results folder (one run or a comparison) as Markdown and HTML with plots."""

from __future__ import annotations

import html
import json
from pathlib import Path

from latentreason.comparison import markdown_table, rows
from latentreason.errors import LatentReasonError
from latentreason.results import Summary


def load_summaries(folder: str | Path) -> list[Summary]:
    """Every ``summary.json`` under ``folder``, sorted by task, producer and seed.

    Raises:
        LatentReasonError: if there is none.
    """
    folder = Path(folder)
    summaries = []
    for path in sorted(folder.rglob("summary.json")):
        summaries.append(Summary.from_dict(json.loads(path.read_text())))
    if not summaries:
        raise LatentReasonError(f"No summary.json under {str(folder)!r}: run `latentreason run --output {folder}` first.")
    return sorted(summaries, key=lambda s: (s.task, s.producer, s.seed))


def plot_accuracy(summaries: list[Summary], path: Path) -> None:
    """Grouped bars: flexible and strict accuracy per task and producer, 95% CI whiskers for one seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = rows(summaries)
    tasks = list(dict.fromkeys(r.task for r in grouped))
    producers = list(dict.fromkeys(r.producer for r in grouped))
    width = 0.8 / len(producers)
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 2.2 * len(tasks) * 2), 4), sharey=True)
    for ax, kind in zip(axes, ("flexible", "strict")):
        for j, producer in enumerate(producers):
            xs, ys, lows, highs = [], [], [], []
            for i, task in enumerate(tasks):
                row = next((r for r in grouped if r.task == task and r.producer == producer), None)
                if row is None:
                    continue
                mean = sum(getattr(s, f"{kind}_acc") for s in row.runs) / len(row.runs)
                low, high = getattr(row.runs[0], f"{kind}_ci") if len(row.runs) == 1 else (mean, mean)
                xs.append(i + (j - (len(producers) - 1) / 2) * width)
                ys.append(mean)
                lows.append(mean - low)
                highs.append(high - mean)
            ax.bar(xs, ys, width, yerr=[lows, highs], capsize=3, label=producer)
        ax.set_xticks(range(len(tasks)), tasks)
        ax.set_title(f"{kind} accuracy (95% CI)")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_accuracy_vs_latency(summaries: list[Summary], path: Path) -> None:
    """Scatter: flexible accuracy against seconds per example, one point per (task, producer)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    markers = "osD^v<>p*h"
    tasks = list(dict.fromkeys(s.task for s in summaries))
    for row in rows(summaries):
        acc = sum(s.flexible_acc for s in row.runs) / len(row.runs)
        latency = sum(1 / s.examples_per_s for s in row.runs if s.examples_per_s) / len(row.runs)
        ax.scatter(latency, acc, marker=markers[tasks.index(row.task) % len(markers)], s=50)
        ax.annotate(f"{row.producer} ({row.task})", (latency, acc), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("seconds per example")
    ax.set_ylabel("flexible accuracy")
    ax.set_title("accuracy against latency")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_training(history: Path, path: Path) -> None:
    """Training loss per step (and its running mean) with the validation loss per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(history.read_text())
    steps = [h["step"] for h in data["train"]]
    losses = [h["loss"] for h in data["train"]]
    window = max(1, len(losses) // 10)
    smooth = [sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1]) for i in range(len(losses))]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, losses, alpha=0.35, label="train loss (per step)")
    ax.plot(steps, smooth, label=f"train loss (mean of {window})")
    per_epoch = len(steps) / max(1, len(data["validation"]))
    for v in data["validation"]:
        ax.scatter(v["epoch"] * per_epoch, v["loss"], color="black", zorder=3)
    if data["validation"]:
        ax.scatter([], [], color="black", label="validation loss (end of epoch)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("NLL")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_report(folder: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (with two PNG plots) into ``folder``.

    Returns:
        The paths of the Markdown and HTML reports.
    """
    folder = Path(folder)
    summaries = load_summaries(folder)
    plot_accuracy(summaries, folder / "accuracy.png")
    plot_accuracy_vs_latency(summaries, folder / "accuracy_vs_latency.png")
    table = markdown_table(summaries)
    md = folder / "report.md"
    md.write_text(
        f"# latentreason report: {folder.name}\n\n{table}\n\n"
        "![accuracy](accuracy.png)\n\n![accuracy against latency](accuracy_vs_latency.png)\n"
    )
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    page = folder / "report.html"
    page.write_text(
        "<!doctype html><meta charset=utf-8><title>latentreason report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style>"
        f"<h1>latentreason report: {html.escape(folder.name)}</h1><table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in header)
        + f"</tr>{cells}</table><p><img src=accuracy.png><p><img src=accuracy_vs_latency.png>"
    )
    return md, page
