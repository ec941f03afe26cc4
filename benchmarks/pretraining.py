"""The default offline backbone: what its pretraining costs, and whether it gives the bundled weights.

The package ships the default backbone (``pystatsml_tl/bundled_weights``, see
:mod:`pystatsml_tl.bundles`), so that neither the lesson nor the tests pretrain it first. This
script pretrains it anew with a named recipe (default: ``default``), in a cache of its own
(``--cache``; a temporary one when not given: the user's cache and the bundle are not touched),
and prints one table: the time it took, the source test accuracy, and
whether the state dict is the bundled one bit for bit (same digest) or, if not, how far the two
lie apart. ``--write-bundle`` then saves the new backbone as the package's bundle (after a change
of the recipe, the generator or torch).

    python benchmarks/pretraining.py                                  # about 8 minutes on 2 CPU cores (AVX2)
    python benchmarks/pretraining.py --write-bundle                   # and replace the bundle
    python benchmarks/pretraining.py --recipe fractals-1k --cache pretrain-cache   # 79 minutes; resumable

Training writes a checkpoint after every epoch into the cache: the same command, stopped and run
again with the same ``--cache``, resumes after the last finished epoch (same numbers: every epoch
is seeded), and once finished only reads the result back.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from pystatsml_tl import bundles
from pystatsml_tl.pretraining import bundle_backbone, pretrain
from pystatsml_tl.provenance import cpu_model


def largest_difference(state: dict[str, torch.Tensor], bundled: dict[str, torch.Tensor]) -> float:
    """The largest absolute difference between the floating-point tensors the two share."""
    shared = [name for name in bundled if name in state and state[name].is_floating_point()]
    return max((float((state[name] - bundled[name]).abs().max()) for name in shared), default=0.0)


def main() -> None:
    """Pretrain the default backbone in a temporary cache and compare it with the bundle."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-bundle", action="store_true", help="save the new backbone as the package's bundle")
    parser.add_argument("--recipe", default="default", help="a named pretraining recipe (default: default)")
    parser.add_argument("--cache", default=None, help="the cache to train in, kept (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        started = time.perf_counter()
        backbone = pretrain("resnet18", recipe=args.recipe, cache_dir=args.cache or temporary, device="cpu",
                            force=True, progress=False)  # trained here (resumed from its checkpoint), not installed
        seconds = time.perf_counter() - started
        state = torch.load(backbone.path, weights_only=True)
        found = bundles.find_bundle(backbone.path.stem)
        if found is None:
            same, difference = "no bundle of this key", float("nan")
        else:
            learned, card = found
            same = "yes" if bundles.state_digest(state) == card["state_digest"] else "no"
            difference = largest_difference(state, learned)
        print(f"CPU: {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}\n")
        print("| backbone | images x epochs | seconds (all) | seconds (training) | source test acc | "
              "bundled bit for bit | largest weight difference |")
        print("|---|---|---|---|---|---|---|")
        card = backbone.card
        print(f"| {backbone.path.stem} | {card['train_size']} x {card['epochs']} | {seconds:.0f} | "
              f"{card['seconds']:.0f} | {card['source_test_acc']:.3f} | {same} | {difference:.2e} |")
        if args.write_bundle:
            print(f"\nbundle written: {bundle_backbone(backbone)}")


if __name__ == "__main__":
    main()
