"""What the offline backbone is worth on real images that no part of this package drew.

Three small real image sets are read from files that registry packages ship (no network) and
written once as image folders (32x32 RGB PNGs, every third image of a class to ``test/``):

- ``digits``: scikit-learn's handwritten digits (1797 scans, 8x8 grey, 10 classes);
- ``photos``: 32x32 patches of ten colour photographs shipped by scikit-image and scikit-learn
  (astronaut, cat, coffee, galaxies, tissue stain, retina, rocket launch, motorcycle, a Chinese
  temple, a flower), the class being the photograph: 100 train and 50 test patches of each;
- ``faces``: scikit-image's ``lfw_subset`` (100 faces and 100 non-face patches, 25x25 grey);
- ``photos-grey`` (not in the default sets): the same photo patches made grey, to tell how much
  of a difference on ``photos`` comes from colour.

Every comparison is paired (same seeds, so the same splits and subsets on both sides) between
``weights=synthetic`` (the offline backbone) and ``weights=none`` (random init): the frozen
extractor (Adam) on all training images, and fine-tuning with SGD and with Adam on 100 and 300
training images, smoke settings otherwise. It prints a Markdown table: mean test accuracy and
Student's t 95 % interval over the seeds, and the paired difference with its interval.

    pip install scikit-learn scikit-image
    python benchmarks/real_images.py --seeds 5
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

SETS = ("digits", "photos", "faces")
EXTRA_SETS = ("photos-grey",)
PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina", "rocket")


def _save(image: np.ndarray, folder: Path, name: str, size: int = 32) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(image)
    if picture.size != (size, size):
        picture = picture.resize((size, size), Image.BILINEAR)
    picture.convert("RGB").save(folder / f"{name}.png")


def _grey_uint8(image: np.ndarray, top: float) -> np.ndarray:
    return (np.asarray(image, dtype=float) * (255 / top)).clip(0, 255).astype(np.uint8)


def write_digits(root: Path) -> None:
    """scikit-learn's digits as ``root/{train,test}/<digit>/<index>.png``: the package's ``digits``
    data set (the scans enlarged to 32 px, every third scan of each digit a test image)."""
    from pystatsml_tl.data.digits import digit_images, digits_split

    images, labels = digit_images()
    is_test = digits_split(labels)
    for index, (image, label) in enumerate(zip(images, labels)):
        _save(image, root / ("test" if is_test[index] else "train") / str(label), str(index))


def write_faces(root: Path) -> None:
    """scikit-image's ``lfw_subset`` (first 100 faces, then 100 other patches) as two classes."""
    from skimage import data

    for index, image in enumerate(data.lfw_subset()):
        label = "face" if index < 100 else "other"
        _save(_grey_uint8(image, 1.0), root / ("test" if index % 3 == 2 else "train") / label, str(index))


def write_photos(root: Path, per_class: int = 150) -> None:
    """Random 32x32 patches (seeded) of ten photographs scaled to 160 pixels on their short side."""
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(data, name)() for name in PHOTOS}
    photos["china"], photos["flower"] = load_sample_images().images
    photos["motorcycle"] = data.stereo_motorcycle()[0]
    rng = np.random.default_rng(0)
    for name, photo in photos.items():
        picture = Image.fromarray(photo).convert("RGB")
        scale = 160 / min(picture.size)
        pixels = np.asarray(picture.resize((round(picture.size[0] * scale), round(picture.size[1] * scale)),
                                           Image.BILINEAR))
        for index in range(per_class):
            top, left = rng.integers(0, pixels.shape[0] - 32), rng.integers(0, pixels.shape[1] - 32)
            _save(pixels[top:top + 32, left:left + 32].copy(), root / ("test" if index % 3 == 2 else "train") / name,
                  str(index))


def write_photos_grey(root: Path) -> None:
    """The patches of :func:`write_photos`, each made grey (luma, as PIL's ``L`` mode)."""
    from PIL import Image

    colour = image_folder("photos", root.parent)
    for path in colour.rglob("*.png"):
        target = root / path.relative_to(colour)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(path).convert("L").convert("RGB").save(target)


WRITERS = {"digits": write_digits, "photos": write_photos, "faces": write_faces, "photos-grey": write_photos_grey}


def image_folder(name: str, root: str | Path) -> Path:
    """The image folder of real set ``name`` under ``root``, written on first use (kept after)."""
    folder = Path(root) / name
    if not (folder / ".complete").is_file():
        WRITERS[name](folder)
        (folder / ".complete").write_text("")
    return folder


def comparisons(name: str) -> list[tuple[str, int | None]]:
    """(experiment, training images) pairs measured on set ``name`` (faces has 133 training images)."""
    sizes = (100,) if name == "faces" else (100, 300)
    return [("extractor-adam", None)] + [(e, n) for e in ("finetune-sgd", "finetune-adam") for n in sizes]


def measure(folder: Path, experiment: str, train_subset: int | None, weights: str, seeds: list[int],
            epochs: int) -> list[float]:
    """Test accuracies (fractions) of one experiment on ``folder``, one per seed."""
    from pystatsml_tl import profile_parameters
    from pystatsml_tl.runs.experiments import run_experiment

    base = profile_parameters("smoke", device="cpu", progress=False, epochs=epochs)
    return [run_experiment(base, experiment=experiment, dataset=str(folder), weights=weights,
                           train_subset=train_subset, seed=seed, log_interval=None).test.accuracy for seed in seeds]


def _interval(values: list[float]) -> str:
    from pystatsml_tl.runs.statistics import t_interval

    low, high = t_interval([100 * v for v in values])
    return f"{100 * np.mean(values):.1f} [{low:.1f}, {high:.1f}]"


def main(argv: list[str] | None = None) -> int:
    """Measure every comparison on the chosen sets and print the Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS),
                        help=f"comma-separated, from {', '.join(SETS + EXTRA_SETS)} (default: {','.join(SETS)})")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default: 5, at least 2)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default: 5)")
    parser.add_argument("--images", default="reports/images", help="where the image folders are written")
    args = parser.parse_args(argv)
    sets = [name.strip() for name in args.sets.split(",") if name.strip()]
    if not sets or set(sets) - set(SETS + EXTRA_SETS):
        parser.error(f"--sets {args.sets}: expected names from {', '.join(SETS + EXTRA_SETS)}")
    if args.seeds < 2:
        parser.error(f"--seeds {args.seeds}: expected at least 2 (intervals need two seeds)")
    from pystatsml_tl.models import make_model
    from pystatsml_tl.runs.statistics import paired_t

    make_model("resnet18", weights="synthetic", num_classes=10)  # pretrain first, if needed, outside the timing
    seeds, started = list(range(args.seeds)), time.time()
    print(f"Test accuracy (%), mean [95 % t interval] over {args.seeds} seeds; difference = offline backbone "
          "minus random init, paired by seed.\n")
    print("| set | experiment | train images | offline backbone | random init | difference |")
    print("|---|---|---|---|---|---|")
    for name in sets:
        folder = image_folder(name, args.images)
        for experiment, size in comparisons(name):
            ours, random = (measure(folder, experiment, size, weights, seeds, args.epochs)
                            for weights in ("synthetic", "none"))
            diff = paired_t(ours, random)
            print(f"| {name} | {experiment} | {size or 'all'} | {_interval(ours)} | {_interval(random)} | "
                  f"{diff.diff_mean:+.1f} [{diff.diff_ci_low:+.1f}, {diff.diff_ci_high:+.1f}] |", flush=True)
    print(f"\n{time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
