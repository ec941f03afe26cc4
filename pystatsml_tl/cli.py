"""The ``pystatsml-tl`` command: ``run`` the experiments, ``list`` what there is, ``pretrain`` a backbone."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from .parameters import EXPERIMENTS, PARAMETERS, PROFILE_EXPERIMENTS, PROFILES, parse_value


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parse_sets(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected NAME=VALUE")
        overrides[name.strip()] = parse_value(name.strip(), text)
    return overrides


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pystatsml-tl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="execute experiments with papermill and write a report")
    run.add_argument("--profile", choices=list(PROFILES), default="quick", help="named parameter set (default: quick)")
    run.add_argument("--experiments", default=None,
                     help=f"comma-separated, among {', '.join(EXPERIMENTS)} (default: the tutorial's four; "
                          "smoke adds scratch)")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="override a notebook parameter (repeatable), e.g. --set epochs=3")
    run.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="where to train (default: auto)")
    run.add_argument("--output-dir", default=None, help="report folder (default: reports/<profile>-<timestamp>)")
    run.add_argument("--jobs", type=int, default=1, help="experiments run in parallel (default: 1)")

    commands.add_parser("list", help="print the experiments, the profiles and the parameters")

    pre = commands.add_parser("pretrain", help="pretrain a backbone on a source task (reused once saved)")
    pre.add_argument("--arch", default="resnet18")
    pre.add_argument("--source", default="synthetic-source", help="synthetic-source, cifar10 or an image folder")
    for name, kind in (("epochs", int), ("batch-size", int), ("lr", float), ("train-size", int), ("seed", int)):
        pre.add_argument(f"--{name}", type=kind, default=None, help="default: the package's recipe")
    pre.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    pre.add_argument("--force", action="store_true", help="retrain even if a saved backbone matches")
    return parser


def _list() -> None:
    print("Experiments:")
    for name, settings in EXPERIMENTS.items():
        print(f"  {name:15s} " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print("\nProfiles (over the defaults):")
    for name, values in PROFILES.items():
        print(f"  {name:9s} " + ", ".join(f"{k}={v!r}" for k, v in values.items()))
        print(f"  {'':9s} runs {', '.join(PROFILE_EXPERIMENTS[name])}")
    print("\nParameters:")
    for p in PARAMETERS.values():
        print(f"  {p.name:14s} {p.type.__name__:6s} default {p.default!r:14s} {p.help}")


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    from .runner import run

    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected a positive integer")
    try:
        overrides = _parse_sets(args.set)
        if args.device is not None:
            overrides["device"] = args.device
        chosen = args.experiments if args.experiments is not None else ",".join(PROFILE_EXPERIMENTS[args.profile])
        experiments = [name.strip() for name in chosen.split(",") if name.strip()]
        output_dir = args.output_dir or f"reports/{args.profile}-{time.strftime('%Y%m%d-%H%M%S')}"
        from .runner import plan_run

        plan_run(args.profile, experiments, overrides, output_dir)  # validates everything before work
    except ValueError as error:
        parser.error(str(error))
    command = "pystatsml-tl " + " ".join(shlex.quote(a) for a in argv)
    return run(args.profile, experiments, overrides, output_dir, args.jobs, command=command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pystatsml-tl`` command."""
    argv = sys.argv[1:] if argv is None else argv
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        _list()
        return 0
    if args.command == "pretrain":
        from .errors import ResourceUnavailableError
        from .pretraining import pretrain

        try:
            backbone = pretrain(args.arch, args.source, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                train_size=args.train_size, seed=args.seed, device=args.device, force=args.force)
        except ValueError as error:
            parser.error(str(error))
        except ResourceUnavailableError as error:
            print(error, file=sys.stderr)
            return 1
        print(backbone.path)
        print(f"source test accuracy {100 * backbone.card['source_test_acc']:.1f}% "
              f"({len(backbone.card['classes'])} classes, {backbone.card['epochs']} epochs)")
        return 0
    return _run(args, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
