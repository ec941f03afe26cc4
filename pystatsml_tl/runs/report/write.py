"""Writing a folder's report: its tables as CSV, its page as Markdown and HTML, its figures, each
file atomically and the whole under a lock, so that concurrent writers (shards) never mix two reports.

The report is rebuilt from the ``metrics.json`` files present (and the failures recorded beside
them), so any process can write it at any time: shards of one grid never coordinate, and
``pystatsml-tl report DIR`` gives the same tables as the run that wrote them. Files:

- ``runs.csv``: one line per run (experiment, grid values, seed, test accuracy and its Wilson interval);
- ``summary.csv``: one row per experiment and grid point, over its seeds (mean, sd, 95 % interval);
- ``comparisons.csv``: the paired comparisons (the lesson's questions by default, every pair of rows
  that differ in one thing, or each setting against one reference), with unadjusted and
  simultaneous intervals;
- ``summary.md`` and ``summary.html`` (the same page; the HTML embeds its figures and links each
  executed notebook rendered to HTML), ``summary.png`` (every seed, mean and interval),
  ``epochs.png`` (accuracy per epoch, small multiples) and ``grid-<parameter>.png`` for each
  numeric grid parameter (test accuracy against it).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...storage import atomic_path, file_lock, write_text_atomic
from .collect import (
    check_report_folder,
    collect_folder,
    grid_columns,
    read_run_file,
    shared_parameters,
    unique_runs,
)
from .compare import ALL_PAIRS, ALPHA, comparison_table
from .describe import comparison_sentence
from .draw import epochs_figure, grid_figure, numeric_grid_columns, save_figure, seeds_figure
from .page import Page, to_html, to_markdown
from .provenance import provenance_items
from .tables import compact_summary, runs_table, summary_table


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def _notebook_links(output_dir: Path) -> list[str]:
    """Each executed notebook of the folder rendered to HTML beside it, as a link item."""
    from ..notebooks import notebook_html

    items = []
    for notebook in sorted(output_dir.rglob("seeds-*.ipynb")):
        page = notebook_html(notebook).relative_to(output_dir)
        items.append(f"[{page}]({page}) (notebook `{notebook.relative_to(output_dir)}`)")
    return items


def write_report(output_dir: str | Path, command: str = "", compare_to: str | None = None) -> dict[str, Path]:
    """Rebuild the report of every complete run under ``output_dir``: ``runs.csv``, ``summary.csv``,
    ``comparisons.csv``, ``summary.md``, ``summary.html`` and the figures, each written atomically,
    the whole under a lock so that concurrent writers (shards) never mix two reports.

    ``compare_to`` (default: what the run that wrote the folder asked for) compares each experiment
    with that one only. Raises ``ValueError`` for a folder that holds other reports, for an unknown
    ``compare_to`` and (:class:`DuplicateRunError`) for two different results of the same run.
    """
    output_dir = Path(output_dir)
    check_report_folder(output_dir)
    run_file = read_run_file(output_dir)
    compare_to = compare_to or run_file.get("compare_to")
    commands = list(dict.fromkeys(c for c in (run_file.get("command"), command) if c)) or [
        f"pystatsml-tl report {output_dir}"]
    paths = {name: output_dir / name for name in ("runs.csv", "summary.csv", "comparisons.csv", "summary.md",
                                                    "summary.html", "summary.png", "epochs.png")}
    with file_lock(output_dir / ".report.lock"):
        found, failures, unreadable = collect_folder(output_dir)
        runs, repeated = unique_runs(found)
        records = runs + failures
        shared = shared_parameters(records) if records else {}
        dataset = shared.get("dataset", "several datasets")
        dataset_name = Path(dataset).name if "/" in str(dataset) else dataset
        published = dataset == "cifar10"
        grid = grid_columns(records)
        summary = summary_table(runs, failures, published)
        comparisons = comparison_table(runs, compare_to)
        for name, table in (("runs.csv", runs_table(runs, failures)), ("summary.csv", summary),
                            ("comparisons.csv", comparisons)):
            _write_csv(table, paths[name])
        seeds = sorted({r["parameters"]["seed"] for r in records})
        page = Page(f"Transfer-learning report: `{dataset_name}`")
        page.add_paragraph(
            f"{len(runs)} complete run(s), {len(failures)} failed"
            + (f", {len(unreadable)} unreadable" if unreadable else "")
            + f"; seeds {', '.join(map(str, seeds)) or '-'}. "
            "A run is its experiment, the settings that differ between runs and its seed; runs of different "
            "settings with the same seed share their data split, subsets and test images, so settings are "
            "compared seed by seed.")
        page.add_bullets(repeated)
        page.add_heading("Test accuracy (%) over seeds").add_table(compact_summary(summary, grid))
        page.add_paragraph(
            "95 % interval of the mean: Student's t over the seeds computed on the logit scale, so that it stays "
            "inside [0, 100]; for a single run the Wilson interval of its test accuracy, which covers only the finite "
            "test set, not seed-to-seed variation. Every column, and one line per run: `summary.csv`, `runs.csv`.")
        if published:
            page.add_paragraph("`tutorial (%)`: the tutorial's published best accuracy (one run, 5 epochs, all of "
                               "CIFAR-10, picked on the test split).")
        else:
            page.add_paragraph(f"The tutorial's published numbers (CIFAR-10) are not shown: these runs used "
                               f"`{dataset_name}`.")
        if len(comparisons):
            family = len(comparisons)
            question = {None: "the lesson's questions (pretrained minus random weights, fine-tuned minus frozen, "
                              "Adam minus SGD; `--compare-to all` asks every pair that differs in one thing)",
                        ALL_PAIRS: "each pair of rows that differ in one thing"}.get(
                compare_to, f"each experiment against `{compare_to}` at the same settings")
            page.add_heading("Which differences are real")
            page.add_paragraph(
                f"Compared: {question}, on their shared seeds ({family} comparison{'s' * (family > 1)}). A difference "
                f"is called real when its Holm-adjusted p-value over the {family} comparison(s) is below {ALPHA}; "
                "each interval is the simultaneous 95 % interval over the same comparisons (Bonferroni, each at "
                f"1 - {ALPHA} / {family}), so that it agrees with the verdict, and a sentence says why where they "
                "differ. Where a difference is not resolved, the seeds that would resolve it are computed from the "
                "observed seed-to-seed spread (paired t-test, 80 % power, at the same level). Numbers, with the "
                "unadjusted intervals too: `comparisons.csv`.")
            page.add_bullets([f"{comparison_sentence(row)}." for row in comparisons.to_dict("records")])
        if runs:
            page.add_heading("Figures")
            title = f"{dataset_name}: test accuracy of each seed, mean and 95 % interval"
            page.add_figure(save_figure(seeds_figure(runs, published, title), paths["summary.png"]),
                            "test accuracy of each seed, mean and 95 % interval")
            page.add_figure(save_figure(epochs_figure(runs), paths["epochs.png"]),
                            "selection accuracy per epoch, one panel per setting")
            for name in numeric_grid_columns(runs):
                path = output_dir / f"grid-{name}.png"
                paths[path.name] = path
                page.add_figure(save_figure(grid_figure(runs, name), path), f"test accuracy against {name}")
        if failures:
            page.add_heading("Failed runs").add_bullets([f"`{f['path']}`: {f['error']}" for f in failures])
        if unreadable:
            page.add_heading("Runs that could not be read").add_bullets(
                [f"`{u['path']}`: {u['problem']}; the run is left out until it is run again" for u in unreadable])
        page.add_heading("How this report was made")
        page.add_bullets(provenance_items(runs, commands) if runs else [f"command: `{c}`" for c in commands])
        page.add_bullets(["parameters shared by all runs: " + ", ".join(f"`{k}={v!r}`" for k, v in shared.items()),
                          "per run: `<experiment>[/<grid values>]/seed-<seed>/metrics.json` and figures; per group, "
                          "the executed notebook `seeds-*.ipynb`, rendered to HTML beside it"])
        links = _notebook_links(output_dir)
        if links:
            page.add_heading("Executed notebooks").add_bullets(links)
        write_text_atomic(paths["summary.md"], to_markdown(page))
        write_text_atomic(paths["summary.html"], to_html(page, output_dir))
    return paths
