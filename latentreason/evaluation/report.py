"""Render a results folder (one run or a comparison) as Markdown and HTML with plots."""

from __future__ import annotations

import html
import json
from pathlib import Path

from latentreason.evaluation.tables import Cell, load_cells, markdown_table, reference_names, rows


def plot_accuracy(cells: list[Cell], path: Path) -> None:
    """Grouped bars: flexible and strict accuracy per task and method.

    Whiskers: the 95% Wilson interval for one seed; the lowest and highest
    seed for several (their spread is what the seeds show; a pooled interval
    would count seeds as extra problems).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = rows(cells)
    tasks = list(dict.fromkeys(r.task for r in grouped))
    methods = list(dict.fromkeys(r.method for r in grouped))
    width = 0.8 / len(methods)
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 2.2 * len(tasks) * 2), 4), sharey=True)
    for ax, kind in zip(axes, ("flexible", "strict")):
        for j, method in enumerate(methods):
            xs, ys, lows, highs = [], [], [], []
            for i, task in enumerate(tasks):
                row = next((r for r in grouped if r.task == task and r.method == method), None)
                if row is None:
                    continue
                accs = [getattr(s, f"{kind}_acc") for s in row.runs]
                mean = sum(accs) / len(accs)
                low, high = getattr(row.runs[0], f"{kind}_ci") if len(accs) == 1 else (min(accs), max(accs))
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(mean)
                lows.append(mean - low)
                highs.append(high - mean)
            ax.bar(xs, ys, width, yerr=[lows, highs], capsize=3, label=method)
        ax.set_xticks(range(len(tasks)), tasks)
        several = any(len(r.runs) > 1 for r in grouped)
        ax.set_title(f"{kind} accuracy\n(95% CI; range over seeds)" if several else f"{kind} accuracy (95% CI)")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("accuracy")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


COSTS = {
    "latency": ("seconds per example", lambda s: 1 / s.examples_per_s if s.examples_per_s else 0.0),
    "peak_kv": ("peak KV-cache tokens (mean over examples)", lambda s: s.mean_peak_kv),
}


def plot_accuracy_against(cells: list[Cell], path: Path, cost: str) -> None:
    """Scatter: flexible accuracy against a cost, one point per (task, method).

    Args:
        cells: the runs.
        path: PNG to write.
        cost: ``"latency"`` (seconds per example) or ``"peak_kv"`` (mean peak KV-cache tokens).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label, value = COSTS[cost]
    grouped = rows(cells)
    methods = list(dict.fromkeys(r.method for r in grouped))
    tasks = list(dict.fromkeys(r.task for r in grouped))
    colors = plt.get_cmap("tab20").colors
    markers = "osD^v<>p*h"
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for row in grouped:
        acc = sum(s.flexible_acc for s in row.runs) / len(row.runs)
        x = sum(value(s) for s in row.runs) / len(row.runs)
        index = methods.index(row.method)
        ax.scatter(
            x,
            acc,
            marker=markers[tasks.index(row.task) % len(markers)],
            s=60,
            color=colors[index % len(colors)],
            label=row.method if len(tasks) == 1 else f"{row.method} ({row.task})",
        )
    ax.set_xlabel(label)
    ax.set_ylabel("flexible accuracy")
    ax.set_title(f"accuracy against {label.split(' (')[0]}")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # a legend, not labels: points often overlap
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
    smooth = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
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


def plot_paired(cells: list[Cell], reference: str | None, path: Path) -> bool:
    """Each method's paired difference in flexible accuracy against the (first) reference, with its 95% interval.

    Returns:
        Whether there was anything to plot (a second method).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = rows(cells)
    refs = {r.task: r for r in grouped if r.method == reference} or {}
    for r in grouped:
        refs.setdefault(r.task, r)
    points = [
        (f"{r.method} ({r.task})" if len(refs) > 1 else r.method, r.against(refs[r.task]))
        for r in grouped
        if r is not refs[r.task]
    ]
    shown = [(label, test) for label, test in points if test is not None]
    if not shown:
        return False
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(shown) + 1.4))
    for y, (_, test) in enumerate(shown):
        color = "tab:green" if test.low > 0 else "tab:red" if test.high < 0 else "tab:gray"
        ax.errorbar(
            test.difference,
            y,
            xerr=[[test.difference - test.low], [test.high - test.difference]],
            fmt="o",
            color=color,
            capsize=3,
        )
        ax.annotate(f"p={test.p_value:.2g}", (test.high, y), xytext=(4, -3), textcoords="offset points", fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(shown)), [label for label, _ in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"flexible accuracy minus {next(iter(refs.values())).method}'s (paired, 95% bootstrap CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def render_report(folder: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (with plots) into ``folder``.

    The paired columns compare against the reference named in
    ``comparison.json`` (written by a comparison), else each task's first method.

    Returns:
        The paths of the Markdown and HTML reports.
    """
    folder = Path(folder)
    cells = load_cells(folder)
    meta = folder / "comparison.json"
    reference = reference_names(json.loads(meta.read_text()).get("reference")) if meta.exists() else []
    plot_accuracy(cells, folder / "accuracy.png")
    plot_accuracy_against(cells, folder / "accuracy_vs_latency.png", "latency")
    plot_accuracy_against(cells, folder / "accuracy_vs_peak_kv.png", "peak_kv")
    images = ["accuracy.png", "accuracy_vs_latency.png", "accuracy_vs_peak_kv.png"]
    if plot_paired(cells, reference[0] if reference else None, folder / "paired.png"):
        images.insert(1, "paired.png")
    text = markdown_table(cells, reference)
    table, _, notes = text.partition("\n\n")
    md = folder / "report.md"
    md.write_text(
        f"# latentreason report: {folder.name}\n\n{text}\n\n" + "\n\n".join(f"![{i[:-4]}]({i})" for i in images) + "\n"
    )
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    cells_html = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    notes_html = "".join(f"<p>{html.escape(line)}</p>" for line in notes.splitlines() if line.strip())
    page = folder / "report.html"
    page.write_text(
        "<!doctype html><meta charset=utf-8><title>latentreason report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style>"
        f"<h1>latentreason report: {html.escape(folder.name)}</h1><table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in header)
        + f"</tr>{cells_html}</table>{notes_html}"
        + "".join(f"<p><img src={i}>" for i in images)
    )
    return md, page
