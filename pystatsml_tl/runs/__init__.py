"""Experiments and what is built from them: parameters and grids, what each experiment trains
(``kinds``: one class per kind of experiment), one run (``experiments``), the LR finder, many runs through papermill
(``runner``, ``notebooks``), their statistics, figures and report."""
