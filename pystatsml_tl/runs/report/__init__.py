"""The report of a folder of runs, one module per job: ``collect`` (the runs, each once, and the
files that cannot be read), ``tables`` (per run, per row), ``compare`` (paired comparisons),
``describe`` (the comparisons in words), ``draw`` (figures), ``provenance`` (where the numbers come
from), ``page`` (the page and its templates) and ``write`` (the files, atomically, under a lock).
None of them imports torch: ``pystatsml-tl report`` rebuilds a report from JSON files alone."""
from .collect import (
                      FAILURE_FILE,
                      RUN_FILE,
                      DuplicateRunError,
                      check_report_folder,
                      collect_runs,
                      grid_columns,
                      unique_runs,
                      unreadable_runs,
)
from .compare import ALL_PAIRS, LESSON_QUESTIONS, check_compare_to, comparison_table
from .describe import comparison_sentence
from .tables import compact_summary, runs_table, summary_table
from .write import write_report

__all__ = ["ALL_PAIRS", "FAILURE_FILE", "LESSON_QUESTIONS", "RUN_FILE", "DuplicateRunError", "check_compare_to",
           "check_report_folder", "collect_runs", "compact_summary", "comparison_sentence", "comparison_table",
           "grid_columns", "runs_table", "summary_table", "unique_runs", "unreadable_runs", "write_report"]
