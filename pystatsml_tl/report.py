"""The comparison of several experiments: a table, a figure, and the report files of a run."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .experiments import PUBLISHED_BEST_ACC, PUBLISHED_SECONDS
from .storage import atomic_path, save_figure_atomic, write_text_atomic

TABLE_COLUMNS = ("experiment", "strategy", "optimizer", "weights", "status", "test_acc", "best_epoch", "seconds",
                 "device")


def differing_parameters(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """Names of the parameters whose values differ between the experiments (besides ``experiment``)."""
    params = [m["parameters"] for m in metrics.values()]
    names = [n for n in params[0] if n not in ("experiment", "output_dir")] if params else []
    return [n for n in names if len({repr(p.get(n)) for p in params}) > 1]


def summary_table(metrics: dict[str, dict[str, Any]], failures: dict[str, str] | None = None,
                  published: bool = False) -> pd.DataFrame:
    """One row per experiment: what it trains (strategy, optimizer, weights), test accuracy (%),
    best epoch, seconds, device, the other parameters that differ between experiments, and
    (``published=True``) the tutorial's numbers; failed
    experiments get their error's first line."""
    failures = failures or {}
    varying = differing_parameters(metrics)
    rows = []
    for name, m in metrics.items():
        row = {"experiment": name, **m["settings"], "status": "ok", "test_acc": round(100 * m["test_acc"], 2),
               "best_epoch": m["best_epoch"], "seconds": m["seconds"], "device": m["device"]}
        row |= {p: m["parameters"].get(p) for p in varying}
        rows.append(row)
    for name, error in failures.items():
        rows.append({"experiment": name, "status": "failed", "error": error})
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS) + varying + (["error"] if failures else []))
    if published:
        table["tutorial_best_acc"] = table["experiment"].map(PUBLISHED_BEST_ACC)
        table["tutorial_seconds"] = table["experiment"].map(PUBLISHED_SECONDS)
    return table


def comparison_figure(metrics: dict[str, dict[str, Any]], published: bool = False, title: str = ""):
    """Selection-accuracy curves and test-accuracy bars of the experiments (see :func:`plots.comparison`)."""
    from . import plots

    histories = {n: m["history"] for n, m in metrics.items()}
    test_acc = {n: m["test_acc"] for n, m in metrics.items()}
    return plots.comparison(histories, test_acc, PUBLISHED_BEST_ACC if published else None, title)


def _markdown_table(table: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def write_report(output_dir: str | Path, metrics: dict[str, dict[str, Any]], failures: dict[str, str],
                 context: dict[str, Any]) -> dict[str, Path]:
    """Write ``summary.csv``, ``summary.png`` and ``summary.md`` into ``output_dir``, atomically.

    ``context`` holds ``command``, ``profile``, ``parameters`` (the shared ones), ``device`` and
    ``versions``; they are written into ``summary.md`` so that the report says how it was made.
    """
    output_dir = Path(output_dir)
    dataset = context["parameters"].get("dataset")
    published = dataset == "cifar10"
    table = summary_table(metrics, failures, published)
    paths = {"csv": output_dir / "summary.csv", "md": output_dir / "summary.md", "png": output_dir / "summary.png"}
    with atomic_path(paths["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    lines = [f"# Transfer-learning report: profile `{context['profile']}`", ""]
    if metrics:
        from .plots import plt

        fig = comparison_figure(metrics, published, title=f"{dataset}, profile {context['profile']}")
        save_figure_atomic(fig, paths["png"], dpi=100)
        plt.close(fig)
    lines += [_markdown_table(table), ""]
    if published:
        lines += ["`tutorial_best_acc` is the tutorial's published best accuracy (%, 5 epochs, all of CIFAR-10, "
                  "picked on the test split); `tutorial_seconds` its published CPU time. Our `test_acc` is measured "
                  "once on the test split, for the epoch picked on the validation split when there is one.", ""]
    else:
        lines += [f"The tutorial's published numbers (CIFAR-10) are not shown: this run used `{dataset}`, "
                  "different data, so they are not comparable.", ""]
    if metrics:
        lines += ["![validation accuracy per epoch and test accuracy](summary.png)", ""]
    if failures:
        lines += ["## Failed experiments", ""] + [f"- `{n}`: {e}" for n, e in failures.items()] + [""]
    shared = ", ".join(f"`{k}={v!r}`" for k, v in context["parameters"].items())
    versions = ", ".join(f"{k} {v}" for k, v in context["versions"].items())
    lines += ["## How this report was made", "", f"- command: `{context['command']}`",
              f"- parameters shared by the experiments: {shared}", f"- device: {context['device']}",
              f"- versions: {versions}", "- per experiment: `<experiment>.ipynb` (executed notebook), "
              "`<experiment>/metrics.json` and figures", ""]
    write_text_atomic(paths["md"], "\n".join(lines))
    return paths
