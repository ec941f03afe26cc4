"""What an offline backbone is worth on real images that no part of this package drew.

Three small real image sets are read from files that registry packages ship (no network) and
written once as image folders (32x32 RGB PNGs, every third image of a class to ``test/``):

- ``digits``: scikit-learn's handwritten digits (1797 scans, 8x8 grey, 10 classes);
- ``photos``: 32x32 patches of ten colour photographs shipped by scikit-image and scikit-learn
  (astronaut, cat, coffee, galaxies, tissue stain, retina, rocket launch, motorcycle, a Chinese
  temple, a flower), the class being the photograph: 100 train and 50 test patches of each;
- ``faces``: scikit-image's ``lfw_subset`` (100 faces and 100 non-face patches, 25x25 grey);
- ``photos-grey`` (not in the default sets): the same photo patches made grey, to tell how much
  of a difference on ``photos`` comes from colour.

Two tables, each backbone against random weights of the same network:

- ``probe``: the lesson's linear probe (:func:`pystatsml_tl.runs.insight.linear_probe_accuracy`,
  a logistic regression on the standardised pooled features), fitted on all training images of a
  set and scored on all its test images; random weights drawn with seeds 0..N-1;
- ``finetune``: ``finetune-sgd`` from the backbone against ``scratch`` (the same, from random
  weights) on 100, 300 and 1000 training images where a set has them, smoke settings otherwise,
  paired by seed (same split and subset on both sides): mean test accuracy, Student's t 95 %
  interval, and the paired difference with its interval; with two backbones or more, the first
  minus the second too, paired the same way.

Backbones, by pretraining recipe: ``default`` (the bundled backbone, ``weights=synthetic``: 40
fractal classes, a quarter of the trained ``layer4`` kept), ``layer4-reset`` (the same training,
``layer4`` put back to random weights: the choice of earlier releases) and ``fractals-1k`` (1000
classes of 300 images, a quarter of ``layer4`` kept; pretrained on first use, 79 minutes on 2 CPU
cores); any state dict file too, such as an earlier release's backbone. Every finished
measurement is kept as a JSON file under ``--store`` (named by set, table, backbone key and
digest, size and seed), so a stopped run resumes where it stopped and a second run only prints.

    pip install scikit-learn scikit-image
    python benchmarks/real_images.py --seeds 5                          # both tables, every backbone
    python benchmarks/real_images.py --tables probe --backbones default  # minutes
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

SETS = ("digits", "photos", "faces")
EXTRA_SETS = ("photos-grey",)
TABLES = ("probe", "finetune")
BACKBONES = ("default", "layer4-reset", "fractals-1k")
FINETUNE_SIZES = (100, 300, 1000)
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


def is_state_dict_file(backbone: str) -> bool:
    """Whether a ``--backbones`` entry names a state dict file (``.pt``) rather than a recipe."""
    return backbone.endswith(".pt") and Path(backbone).expanduser().is_file()


def backbone_weights(backbone: str) -> str:
    """The ``weights`` value of ``backbone``, a pretraining recipe or a state dict file: the path of
    its saved state dict (a recipe's installed from the package's bundle, or pretrained, on first use)."""
    from pystatsml_tl.pretraining import pretrain

    if is_state_dict_file(backbone):
        return str(Path(backbone).expanduser())
    return str(pretrain("resnet18", recipe=backbone, progress=False).path)


@functools.cache
def weights_label(weights: str) -> str:
    """How measurements of a state dict file are named in the store: its file name and the start of
    its digest, so that a backbone rebuilt under the same key with other weights is measured anew."""
    from pystatsml_tl.backbones import read_state_dict
    from pystatsml_tl.bundles import state_digest

    return f"{Path(weights).stem}-{state_digest(read_state_dict(weights))[:8]}"


def _stored(store: Path, name: str, measure) -> float:
    """The value kept under ``store/name.json``, else ``measure()`` kept there (written atomically)."""
    from pystatsml_tl.storage import write_json_atomic

    path = store / f"{name}.json"
    if path.is_file():
        return json.loads(path.read_text())["value"]
    value = float(measure())
    store.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"value": value})
    return value


def probe_accuracy(folder: Path, weights: str, seed: int) -> float:
    """The lesson's linear probe on the frozen pooled features of ResNet18 with ``weights`` (random
    weights drawn with ``seed`` when ``weights`` is ``none``), on all of ``folder``'s images."""
    import torch

    from pystatsml_tl import load_data, make_model
    from pystatsml_tl.features import extract_features
    from pystatsml_tl.runs.insight import linear_probe_accuracy

    torch.manual_seed(seed)
    model = make_model("resnet18", weights=weights, num_classes=10, progress=False)
    data = load_data(str(folder), val_fraction=0.0, batch_size=100)
    train, test = (extract_features(model, data[split], "cpu", precision="fp32") for split in ("train", "test"))
    return linear_probe_accuracy(train, test, seed)


def finetune_accuracy(folder: Path, weights: str, size: int, seed: int, epochs: int) -> float:
    """Test accuracy of ``finetune-sgd`` with ``weights`` on ``size`` training images of ``folder``."""
    from pystatsml_tl import profile_parameters
    from pystatsml_tl.runs.experiments import run_experiment

    base = profile_parameters("smoke", device="cpu", progress=False, epochs=epochs)
    return run_experiment(base, experiment="finetune-sgd", dataset=str(folder), weights=weights,
                          train_subset=size, seed=seed, log_interval=None).test.accuracy


def count_images(folder: Path, split: str = "train") -> int:
    """How many images a split (``train`` or ``test``) of an image folder holds."""
    return sum(1 for _ in (folder / split).rglob("*.png"))


def _interval(values: list[float]) -> str:
    from pystatsml_tl.runs.statistics import t_interval

    low, high = t_interval([100 * v for v in values])
    return f"{100 * np.mean(values):.1f} [{low:.1f}, {high:.1f}]"


def _difference(ours: list[float], theirs: list[float]) -> str:
    from pystatsml_tl.runs.statistics import paired_t

    diff = paired_t(ours, theirs)  # fractions in, points out
    return f"{diff.diff_mean:+.1f} [{diff.diff_ci_low:+.1f}, {diff.diff_ci_high:+.1f}]"


def probe_table(sets: list[str], backbones: dict[str, str], seeds: list[int], images: Path, store: Path) -> None:
    """Print the linear-probe table: each backbone (one value) against random weights (each seed)."""
    print(f"\nLinear probe, test accuracy (%); random weights: mean [95 % t interval] over {len(seeds)} seeds.\n")
    print("| set | train / test images | random weights | " + " | ".join(
        f"{name} backbone | {name} minus random" for name in backbones) + " |")
    print("|---|---|---|" + "---|---|" * len(backbones))
    for name in sets:
        folder = image_folder(name, images)
        random = [_stored(store, f"{name}-probe-none-{seed}", lambda f=folder, s=seed: probe_accuracy(f, "none", s))
                  for seed in seeds]
        cells = []
        for weights in backbones.values():
            ours = _stored(store, f"{name}-probe-{weights_label(weights)}",
                           lambda f=folder, w=weights: probe_accuracy(f, w, 0))
            cells.append(f"{100 * ours:.1f} | {100 * (ours - np.mean(random)):+.1f}")
        sizes = f"{count_images(folder)} / {count_images(folder, 'test')}"
        print(f"| {name} | {sizes} | {_interval(random)} | " + " | ".join(cells) + " |", flush=True)


def finetune_table(sets: list[str], backbones: dict[str, str], seeds: list[int], images: Path, store: Path,
                   epochs: int) -> None:
    """Print the fine-tuning table: each backbone against scratch, paired by seed, per training size."""
    print(f"\nfinetune-sgd, test accuracy (%): mean [95 % t interval] over {len(seeds)} seeds, {epochs} epochs; "
          "differences paired by seed.\n")
    names = list(backbones)
    against = [f"{names[0]} minus {names[1]}"] if len(names) > 1 else []  # the first two, paired by seed
    print("| set | train images | scratch | " + " | ".join(
        [f"{name} backbone | {name} minus scratch" for name in names] + against) + " |")
    print("|---|---|---|" + "---|---|" * len(names) + "---|" * len(against))
    for name in sets:
        folder = image_folder(name, images)
        for size in [n for n in FINETUNE_SIZES if n <= count_images(folder)]:
            scratch = finetune_runs(folder, "none", size, seeds, epochs, store)
            runs = [finetune_runs(folder, weights, size, seeds, epochs, store) for weights in backbones.values()]
            cells = [f"{_interval(ours)} | {_difference(ours, scratch)}" for ours in runs]
            cells += [_difference(runs[0], runs[1])] if against else []
            print(f"| {name} | {size} | {_interval(scratch)} | " + " | ".join(cells) + " |", flush=True)


def finetune_runs(folder: Path, weights: str, size: int, seeds: list[int], epochs: int, store: Path) -> list[float]:
    """Test accuracies of :func:`finetune_accuracy`, one per seed, each kept under ``store``."""
    label = "none" if weights == "none" else weights_label(weights)
    return [_stored(store, f"{folder.name}-finetune-{label}-{size}-{epochs}-{seed}",
                    lambda seed=seed: finetune_accuracy(folder, weights, size, seed, epochs)) for seed in seeds]


def main(argv: list[str] | None = None) -> int:
    """Measure the chosen tables on the chosen sets and print them as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS),
                        help=f"comma-separated, from {', '.join(SETS + EXTRA_SETS)} (default: {','.join(SETS)})")
    parser.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated, from {', '.join(TABLES)}")
    parser.add_argument("--backbones", default=",".join(BACKBONES),
                        help=f"comma-separated, from {', '.join(BACKBONES)}, or paths of state dict files (.pt)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default: 5, at least 2)")
    parser.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs (default: 5)")
    parser.add_argument("--images", default="reports/images", help="where the image folders are written")
    parser.add_argument("--store", default="reports/images/measured", help="where finished measurements are kept")
    args = parser.parse_args(argv)
    chosen = {}
    for option, allowed in (("sets", SETS + EXTRA_SETS), ("tables", TABLES), ("backbones", BACKBONES)):
        names = [name.strip() for name in getattr(args, option).split(",") if name.strip()]
        if option == "backbones":  # a state dict file stands for itself
            allowed += tuple(filter(is_state_dict_file, names))
        if not names or set(names) - set(allowed):
            parser.error(f"--{option} {getattr(args, option)}: expected names from {', '.join(allowed)}")
        chosen[option] = names
    if args.seeds < 2:
        parser.error(f"--seeds {args.seeds}: expected at least 2 (intervals need two seeds)")
    from pystatsml_tl.provenance import cpu_model

    started = time.time()
    backbones = {Path(name).stem if is_state_dict_file(name) else name: backbone_weights(name)
                 for name in chosen["backbones"]}
    seeds, images, store = list(range(args.seeds)), Path(args.images), Path(args.store)
    print(f"CPU: {cpu_model()}; backbones: " + ", ".join(f"{k} = {Path(v).stem}" for k, v in backbones.items()))
    if "probe" in chosen["tables"]:
        probe_table(chosen["sets"], backbones, seeds, images, store)
    if "finetune" in chosen["tables"]:
        finetune_table(chosen["sets"], backbones, seeds, images, store, args.epochs)
    print(f"\n{time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
