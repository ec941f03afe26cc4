"""The pystatsml-tl command: run experiments over seeds and grids, rebuild a report, list what there is,
pretrain a backbone."""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from .devices import DEVICES
from .extensions import load_extensions
from .logs import show_messages
from .runs.parameters import PARAMETERS, PROFILE_SEEDS, PROFILES, parse_assignments
from .runs.registry import EXPERIMENTS, profile_experiments


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pystatsml-tl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="execute experiments with papermill and write a report")
    run.add_argument("--profile", choices=list(PROFILES), default="quick", help="named parameter set (default: quick)")
    run.add_argument("--experiments", default=None,
                     help=f"comma-separated, among {', '.join(EXPERIMENTS)} (default: the profile's; "
                          + "; ".join(f"{name}: {', '.join(profile_experiments(name))}" for name in PROFILES)
                          + ")")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="override a notebook parameter (repeatable), e.g. --set epochs=3")
    run.add_argument("--device", choices=DEVICES, default=None, help="where to train (default: auto)")
    run.add_argument("--output-dir", default=None, help="report folder (default: reports/<profile>-<timestamp>)")
    run.add_argument("--nproc-per-node", default=None, metavar="N",
                     help="data-parallel worker processes per run (DDP): a number, or auto for one per GPU "
                          "(default: 1)")
    run.add_argument("--jobs", type=int, default=1, help="groups (experiment and grid point) run in parallel "
                     "(default: 1)")
    run.add_argument("--seeds", default=None,
                     help="a count (5 = seeds 0..4) or a list (0,3,7); same seed = same split and subsets in every "
                          "experiment, so comparisons are paired (default: the profile's; "
                          + ", ".join(f"{name} {count}" for name, count in PROFILE_SEEDS.items()) + ")")
    run.add_argument("--compare-to", default=None, metavar="NAME",
                     help="compare each experiment with this one only (k-1 comparisons: more power for one "
                          "question), or 'all' for every pair that differs in one thing (default: the lesson's "
                          "questions: pretrained minus random, fine-tuned minus frozen, Adam minus SGD)")
    run.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                     help="run every experiment at each value of a parameter (repeatable: the Cartesian product), "
                          "e.g. --grid image_size=32,128")
    run.add_argument("--shard", default="1/1", metavar="I/N",
                     help="run only the I-th of N disjoint slices of the run list (a job array, several machines "
                          "sharing --output-dir); each shard rebuilds the report from every complete run")

    finder = commands.add_parser("lr-find", help="learning-rate range test of an experiment: plot and suggested rate")
    finder.add_argument("--profile", choices=list(PROFILES), default="smoke",
                        help="named parameter set (default: smoke)")
    finder.add_argument("--experiment", default="finetune-sgd", help=f"one of {', '.join(EXPERIMENTS)}")
    finder.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    finder.add_argument("--num-iter", type=int, default=100, help="batches at most (default: 100)")
    finder.add_argument("--output-dir", default=".", help="where lr_find.png goes (default: the current folder)")

    copy = commands.add_parser("notebooks", help="copy the teaching and experiment notebooks into a folder")
    copy.add_argument("destination", help="folder to copy them into (created if needed)")
    copy.add_argument("--force", action="store_true", help="replace notebooks already there")
    copy.add_argument("--student", action="store_true",
                      help="the student version instead: the lesson's key lines and the exercises' answers left "
                           "to write, a check after each (built ahead: no grading tool needed)")

    grade = commands.add_parser("grade", help="execute each submitted notebook of a folder and score its checks "
                                               "(needs nbgrader: pip install 'pystatsml-tl[teacher]')")
    grade.add_argument("folder", help="a folder of submitted notebooks (*.ipynb)")
    grade.add_argument("--timeout", type=int, default=900, help="seconds a cell may run (default: 900)")

    report = commands.add_parser("report", help="rebuild the report of a folder from the runs it holds")
    report.add_argument("output_dir", help="a folder written by pystatsml-tl run")
    report.add_argument("--compare-to", default=None, metavar="NAME",
                        help="an experiment to compare each with, or 'all' (default: what the run asked for)")

    commands.add_parser("list", help="print the experiments, the profiles and the parameters")

    pre = commands.add_parser("pretrain", help="pretrain a backbone on a source task (reused once saved)")
    pre.add_argument("--arch", default="resnet18")
    pre.add_argument("--source", default="fractals",
                     help="fractals (default: formula-driven), synthetic-source, cifar10 or an image folder")
    pre.add_argument("--recipe", default="default",
                     help="default (the bundled backbone: minutes on a CPU), fractals-1k (1000 classes: about "
                          "80 minutes on 2 CPU cores) or long (for a GPU); the options below override it")
    for name, kind in (("classes", int), ("epochs", int), ("batch-size", int), ("lr", float), ("weight-decay", float),
                       ("train-size", int), ("test-size", int), ("seed", int), ("keep-blocks", int),
                       ("trained-share", float)):
        pre.add_argument(f"--{name}", type=kind, default=None, help="default: the recipe's")
    pre.add_argument("--device", choices=DEVICES, default="auto")
    pre.add_argument("--force", action="store_true", help="retrain even if a saved backbone matches")
    return parser


def _list() -> None:
    from .data.registry import DATASETS
    from .runs.kinds import KINDS

    print("Experiments (name, kind, optimizer, what trains, weights, colour):")
    for name, entry in EXPERIMENTS.items():
        weights = entry.weights or "the run's"
        print(f"  {name:17s} {entry.kind:15s} {entry.optimizer:6s} {entry.what_trains}; weights {weights}; "
              f"colour {entry.colour}")
    print("\nKinds: " + ", ".join(KINDS))
    print("\nData sets (name, classes, image size):")
    for name, dataset in DATASETS.items():
        print(f"  {name:17s} {dataset.classes:3d} classes, {dataset.image_size} px  {dataset.description}")
    print("  (or the path of an image folder with train/ and test/)")
    print("\nProfiles (over the defaults):")
    for name, values in PROFILES.items():
        print(f"  {name:9s} " + ", ".join(f"{k}={v!r}" for k, v in values.items()))
        print(f"  {'':9s} runs {', '.join(profile_experiments(name))}")
    print("\nParameters:")
    for p in PARAMETERS.values():
        print(f"  {p.name:14s} {p.type.__name__:6s} default {p.default!r:14s} {p.describe()}")


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    from .runs.grid import parse_grid, parse_seeds, parse_shard
    from .runs.runner import plan_run, run

    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected a positive integer")
    try:
        overrides = parse_assignments(args.set)
        if args.device is not None:
            overrides["device"] = args.device
        if args.nproc_per_node is not None:
            overrides["nproc_per_node"] = args.nproc_per_node
        chosen = args.experiments if args.experiments is not None else ",".join(profile_experiments(args.profile))
        experiments = [name.strip() for name in chosen.split(",") if name.strip()]
        seeds = parse_seeds(args.seeds) if args.seeds is not None else list(range(PROFILE_SEEDS[args.profile]))
        grid, shard = parse_grid(args.grid), parse_shard(args.shard)
        output_dir = args.output_dir or f"reports/{args.profile}-{time.strftime('%Y%m%d-%H%M%S')}"
        plan_run(args.profile, experiments, overrides, output_dir, seeds, grid, shard,
                 args.compare_to)  # validates before any work
    except ValueError as error:
        parser.error(str(error))
    command = "pystatsml-tl " + " ".join(shlex.quote(a) for a in argv)
    return run(args.profile, experiments, overrides, output_dir, args.jobs, command=command, seeds=seeds, grid=grid,
               shard=shard, compare_to=args.compare_to)


def _lr_find(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from pathlib import Path

    from .runs.lr_finder import lr_find_experiment
    from .runs.parameters import profile_parameters

    try:
        if args.num_iter < 5:
            raise ValueError(f"--num-iter {args.num_iter}: expected an integer >= 5")
        params = profile_parameters(args.profile, **(parse_assignments(args.set) | {"experiment": args.experiment}))
    except ValueError as error:
        parser.error(str(error))
    result = lr_find_experiment(params, num_iter=args.num_iter)
    from .runs.plots import plt
    from .storage import save_figure_atomic

    fig = result.plot(title=f"{args.experiment}, profile {args.profile}")
    path = save_figure_atomic(fig, Path(args.output_dir) / "lr_find.png", dpi=100)
    plt.close(fig)
    print(f"suggested learning rate {result.suggestion:.3g} ({result.rule}; {len(result.lrs)} batches"
          f"{', stopped when the loss diverged' if result.diverged else ''})")
    print(path)
    return 0


def _report(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    from pathlib import Path

    from .runs.report import check_report_folder, collect_runs, write_report

    folder = Path(args.output_dir)
    if not folder.is_dir():
        parser.error(f"output_dir {args.output_dir!r}: expected an existing folder written by pystatsml-tl run")
    try:
        check_report_folder(folder)
        runs, failures = collect_runs(folder)
        if not runs and not failures:
            raise ValueError(f"output_dir {args.output_dir!r}: no metrics.json found under it")
        paths = write_report(folder, command="pystatsml-tl " + " ".join(shlex.quote(a) for a in argv),
                             compare_to=args.compare_to)
    except ValueError as error:
        parser.error(str(error))
    print(paths["summary.md"])
    print(paths["summary.html"])
    print(f"{len(runs)} complete run(s), {len(failures)} failed")
    return 0


def _grade(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from pathlib import Path

    folder = Path(args.folder)
    if not folder.is_dir() or not list(folder.glob("*.ipynb")):
        parser.error(f"folder {str(folder)!r}: expected a folder holding submitted notebooks (*.ipynb)")
    try:
        import nbgrader  # noqa: F401  (the points and grades are nbgrader's)
    except ImportError:
        print("grading needs nbgrader: pip install 'pystatsml-tl[teacher]'", file=sys.stderr)
        return 1
    from .teaching.assignment import grade_folder

    table = grade_folder(folder, args.timeout)
    for row in table.itertuples():
        failed = f"; failed: {row.failed}" if row.failed else "; every check passed"
        print(f"{row.notebook}: {row.score:g} of {row.max_score:g} points{failed}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pystatsml-tl`` command: its commands end quietly when their output pipe
    closes (``pystatsml-tl list | head``) and on Ctrl-C with one line and exit status 130."""
    try:
        status = _main(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
        return status
    except BrokenPipeError:
        # the reader went away: say nothing more, and keep Python from failing to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _main(argv: list[str]) -> int:
    show_messages()
    load_extensions()  # before the parser, whose help lists the registered experiments
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        _list()
        return 0
    if args.command == "pretrain":
        from .errors import ResourceUnavailableError
        from .pretraining import DEFAULT_RECIPE, describe_backbone, pretrain

        try:
            settings = {name: getattr(args, name) for name in DEFAULT_RECIPE}
            backbone = pretrain(args.arch, args.source, recipe=args.recipe, device=args.device, force=args.force,
                                progress=sys.stderr.isatty(), **settings)  # a bar, or a line per epoch
        except ValueError as error:
            parser.error(str(error))
        except ResourceUnavailableError as error:
            print(error, file=sys.stderr)
            return 1
        print(backbone.path)
        print(describe_backbone(backbone.card))
        return 0
    if args.command == "notebooks":
        from .runs.notebooks import copy_notebooks

        try:
            for path in copy_notebooks(args.destination, args.force, "student" if args.student else "teaching"):
                print(path)
        except (FileExistsError, NotADirectoryError) as error:
            parser.error(str(error))
        return 0
    if args.command == "grade":
        return _grade(args, parser)
    if args.command == "lr-find":
        return _lr_find(args, parser)
    if args.command == "report":
        return _report(args, parser, argv)
    return _run(args, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
