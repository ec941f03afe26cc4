"""Transfer measured on real images that no part of this package drew.

The images come from files a registry package ships: scikit-learn's handwritten digits
(``sklearn.datasets.load_digits``: 1797 scans, 8x8 grey, 10 classes, read from the installed
package, no network). They are written once as an image folder (upscaled to 32x32 RGB PNGs, every
third image of each class to ``test/``), then ``pystatsml-tl run`` compares experiments on it
with seeds and intervals like any other report. Everything after ``--`` goes to ``pystatsml-tl run``.

    pip install scikit-learn
    python benchmarks/real_images.py --output-dir reports/digits -- --profile smoke --seeds 3 \\
        --experiments finetune-sgd,finetune-adam,extractor-sgd,extractor-adam,scratch,two-stage,discriminative \\
        --set train_subset=300 --set epochs=5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def write_digits_folder(root: str | Path, size: int = 32) -> Path:
    """Write scikit-learn's digits as an image folder ``root/{train,test}/<digit>/<index>.png``
    (once; an existing complete folder is kept). Returns ``root``."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    done = root / ".complete"
    if done.is_file():
        return root
    seen: dict[int, int] = {}
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        count = seen.get(int(label), 0)
        seen[int(label)] = count + 1
        split = "test" if count % 3 == 2 else "train"
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        grey = (np.asarray(image) * (255 / 16)).clip(0, 255).astype(np.uint8)
        Image.fromarray(grey).resize((size, size), Image.BILINEAR).convert("RGB").save(folder / f"{index}.png")
    done.write_text("")
    return root


def main(argv: list[str] | None = None) -> int:
    """Write the digits folder, then run ``pystatsml-tl run`` on it with the arguments after ``--``."""
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    ours, theirs = argv[:split], argv[split + 1:]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="reports/images/digits", help="where the image folder is written")
    parser.add_argument("--output-dir", required=True, help="report folder")
    args = parser.parse_args(ours)
    folder = write_digits_folder(args.images)
    from pystatsml_tl.cli import main as cli

    return cli(["run", *theirs, "--set", f"dataset={folder.resolve()}", "--output-dir", args.output_dir])


if __name__ == "__main__":
    sys.exit(main())
