"""Pretrain a backbone on a source task, save it with a JSON card, and find it again by its key.

Offline, the default source is formula-driven (:mod:`pystatsml_tl.data.formulas`): 40 classes of
fractals, each an iterated function system, rendered on 1/f noise. No natural image, digit,
letter or glyph is involved. The early blocks of the trained network are kept as trained (a
ResNet's stem to ``layer3``: edge, colour, texture and part filters). The last one specialises in
telling fractals apart: kept whole, it fine-tunes worse than from scratch on real images (Yosinski
et al. 2014: the last layers of a network are the least transferable); put back to random weights,
its frozen features are little better than random ones. The default keeps a quarter of it: its
weights are a mix of the trained ones (0.25) and of seeded random ones (0.75), as in the
shrink-and-perturb of Ash and Adams (2020), and its BatchNorm statistics are re-estimated on the
source images (measurements in ``benchmarks/README.md``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__, bundles
from .backbones import check_arch, read_state_dict
from .data import formulas
from .data.datasets import load_data, load_fractals
from .devices import resolve_device
from .storage import cache_dir as resolve_cache_dir
from .storage import file_lock, torch_save_atomic, write_json_atomic
from .training.loop import best_epoch, train_val_model
from .training.recipes import make_scheduler, parameter_blocks, scheduler_interval

logger = logging.getLogger(__name__)

DEFAULT_SOURCE = "fractals"
BUILTIN_SOURCES = ("fractals", "synthetic-source", "cifar10")
DEFAULT_RECIPE: dict[str, Any] = {"classes": 40, "epochs": 5, "batch_size": 64, "lr": 2e-3, "weight_decay": 0.05,
                                  "train_size": 10_000, "test_size": 1_000, "seed": 0, "keep_blocks": 4,
                                  "trained_share": 0.25}
"""Settings of the default offline backbone: 40 fractal classes, AdamW with a one-cycle schedule and
label smoothing, about two minutes on 2 cores of an Intel Xeon with AMX and eight on an AMD EPYC
with AVX2 (the package ships the result:
:mod:`~pystatsml_tl.bundles`). ``classes``: systems of the fractal source (other sources have their
own classes); ``keep_blocks``: blocks kept as trained from the stem on (4 = the stem and ``layer1``
to ``layer3`` of a ResNet); ``trained_share``: the share of the trained weights in the blocks after
them (0: put back to seeded random weights; 1: kept as trained)."""
RECIPES: dict[str, dict[str, Any]] = {
    "default": DEFAULT_RECIPE,
    "layer4-reset": DEFAULT_RECIPE | {"trained_share": 0.0},
    "fractals-1k": DEFAULT_RECIPE | {"classes": 1000, "epochs": 6, "batch_size": 128, "train_size": 300_000,
                                     "test_size": 5_000},
    "long": DEFAULT_RECIPE | {"epochs": 30, "batch_size": 256, "lr": 4e-3, "train_size": 100_000,
                              "test_size": 5_000},
}
"""Named pretraining recipes: ``default`` (the bundled backbone), ``layer4-reset`` (the same training,
``layer4`` put back to random weights: the choice of earlier releases), ``fractals-1k`` (1000
classes of 300 images, the FractalDB-1k shape at a third of its instances: 79 minutes on 2 CPU
cores) and ``long`` (ten times the default's images, six times its epochs: for a GPU); the first
three are measured against each other in ``benchmarks/README.md``."""
_INTEGER_SETTINGS = ("classes", "epochs", "batch_size", "train_size", "test_size", "keep_blocks")
_AFTER_TRAINING = ("keep_blocks", "trained_share")
"""Settings applied to the trained network: another value reuses a finished training."""


@dataclass
class PretrainedBackbone:
    """A saved backbone: its state dict file and its card."""

    path: Path
    card: dict[str, Any]


def _source_name(source: str) -> str:
    return source if source in BUILTIN_SOURCES else str(Path(source).expanduser().resolve())


def source_settings(source: str) -> dict[str, Any]:
    """What defines the images of ``source`` beyond its name: for ``fractals``, the generator, its
    version and settings (a new version of the generator gives a new backbone key)."""
    if source != "fractals":
        return {}
    return {"generator": formulas.GENERATOR, "generator_version": formulas.VERSION, "jitter": formulas.DEFAULT_JITTER,
            "colour_jitter": formulas.COLOUR_JITTER, "grey_share": formulas.GREY_SHARE}


def backbone_key(arch: str, source: str, recipe: dict[str, Any]) -> str:
    """The key a pretrained backbone is saved and found under: arch, source (with its generator's
    version) and training settings."""
    text = json.dumps({"arch": arch, "source": _source_name(source), **source_settings(source), **recipe},
                      sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def backbone_path(arch: str = "resnet18", source: str = DEFAULT_SOURCE, recipe: dict[str, Any] | None = None,
                  cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the backbone for (arch, source, recipe) is kept; its card is the same path with ``.json``."""
    recipe = DEFAULT_RECIPE | (recipe or {})
    label = source if source in BUILTIN_SOURCES else Path(source).name
    return resolve_cache_dir(cache_dir) / "pretrained" / f"{arch}-{label}-{backbone_key(arch, source, recipe)}.pt"


def checkpoint_path(backbone: Path, arch: str, source: str, recipe: dict[str, Any]) -> Path:
    """Where pretraining for ``backbone`` keeps its per-epoch checkpoint, beside it: named by the
    training settings alone (``keep_blocks`` and ``trained_share`` aside), so that a stopped run
    resumes where it stopped and another choice of what is kept reuses a finished training."""
    training = {name: value for name, value in recipe.items() if name not in _AFTER_TRAINING}
    label = backbone.stem.rsplit("-", 1)[0]
    return backbone.with_name(f"{label}-training-{backbone_key(arch, source, training)}.ckpt")


def load_card(path: str | os.PathLike) -> dict[str, Any] | None:
    """Return the card of a saved backbone if it and its state dict are both readable, else None."""
    path = Path(path)
    try:
        card = json.loads(path.with_suffix(".json").read_text())
        read_state_dict(path)
    except (OSError, ValueError):
        return None
    return card


def pretraining_recipe(recipe: str = "default", **settings: Any) -> dict[str, Any]:
    """The named ``recipe`` with ``settings`` (those not None) over it, checked."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe={recipe!r}: expected one of {', '.join(RECIPES)}")
    unknown = set(settings) - set(DEFAULT_RECIPE)
    if unknown:
        raise ValueError(f"{min(unknown)}: not a pretraining setting; expected one of {', '.join(DEFAULT_RECIPE)}")
    chosen = RECIPES[recipe] | {k: v for k, v in settings.items() if v is not None}
    for name in _INTEGER_SETTINGS:
        if not isinstance(chosen[name], int) or chosen[name] <= 0:
            raise ValueError(f"{name}={chosen[name]!r}: expected a positive integer")
    if not isinstance(chosen["lr"], (int, float)) or not chosen["lr"] > 0:
        raise ValueError(f"lr={chosen['lr']!r}: expected a positive number")
    if not isinstance(chosen["weight_decay"], (int, float)) or not chosen["weight_decay"] >= 0:
        raise ValueError(f"weight_decay={chosen['weight_decay']!r}: expected a non-negative number")
    share = chosen["trained_share"]
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise ValueError(f"trained_share={share!r}: expected a number from 0 (random weights) to 1 (kept as trained)")
    return chosen


def pretrain(arch: str = "resnet18", source: str = DEFAULT_SOURCE, *, recipe: str = "default",
             data_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
             device: str = "auto", force: bool = False, progress: bool = True,
             **settings: Any) -> PretrainedBackbone:
    """Train ``arch`` from random weights on ``source`` and save it, or reuse the saved one.

    ``source``: ``fractals`` (default), ``synthetic-source`` (the coloured shapes of the first
    release), ``cifar10`` or an image folder. ``recipe`` names the settings (:data:`RECIPES`);
    keyword ``settings`` (``classes``, ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``train_size``,
    ``test_size``, ``seed``, ``keep_blocks``, ``trained_share``) override them. The state dict and a JSON card (arch,
    source and its generator, classes, settings, kept blocks, source accuracy, package version)
    are written atomically into the cache directory; a later call with the same key finds them and
    returns at once (``force=True`` trains instead). A key the package ships a bundle of (the default
    backbone, :mod:`~pystatsml_tl.bundles`) is installed from it instead of trained. Training keeps a
    checkpoint after every epoch beside the backbone (:func:`checkpoint_path`): a stopped call,
    made again, resumes after the last finished epoch, with the same numbers.
    """
    check_arch(arch)
    chosen = pretraining_recipe(recipe, **settings)
    if source not in BUILTIN_SOURCES and not Path(source).expanduser().is_dir():
        raise ValueError(f"source={source!r}: expected {', '.join(BUILTIN_SOURCES)} or an existing image folder")
    path = backbone_path(arch, source, chosen, cache_dir)
    with file_lock(path.with_suffix(".lock")):  # a second process waits, then reuses what the first saved
        if not force and (card := load_card(path)) is not None:
            return PretrainedBackbone(path, card)
        if not force and (installed := install_bundle(path)) is not None:
            return installed
        return _pretrain_and_save(arch, source, chosen, path, data_dir, device, progress)


def reinitialize_after(model: nn.Module, arch: str, keep_blocks: int, seed: int,
                       trained_share: float = 0.0) -> tuple[list[str], list[str]]:
    """Put every block of ``model`` after its first ``keep_blocks`` (see
    :func:`~pystatsml_tl.training.recipes.parameter_blocks`) back to seeded random weights, buffers
    included; with ``trained_share`` above 0, each of their weights becomes
    ``trained_share * trained + (1 - trained_share) * random`` instead (the buffers are still the
    random draw's: re-estimate them). Returns the names of the kept and of the re-initialised
    blocks (the head aside)."""
    names = [name for name, _ in parameter_blocks(model)][:-1]
    kept, reset = names[:keep_blocks], names[keep_blocks:]
    fresh = _seeded_initial_state(arch, seed)
    parameters = {name for name, _ in model.named_parameters()}
    for key, value in model.state_dict().items():
        if key in fresh and fresh[key].shape == value.shape and not key.startswith(_prefixes(kept)):
            if trained_share and key in parameters:
                value.copy_(trained_share * value + (1 - trained_share) * fresh[key])
            else:
                value.copy_(fresh[key])
    return kept, reset


def _seeded_initial_state(arch: str, seed: int) -> dict[str, torch.Tensor]:
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.get_model(arch, weights=None, num_classes=10).state_dict()


def _redraw_seed(card: dict[str, Any]) -> int:
    return card["seed"] + 1  # the seed of the blocks put back to random weights after pretraining


def install_bundle(path: Path) -> PretrainedBackbone | None:
    """Rebuild the package's bundle of ``path``'s key (its learned tensors, the rest drawn again
    from the card's seed) and save it with its card at ``path``. None when the package has no
    bundle of that key, or when the rebuilt state dict is not the one bundled (another torch may
    draw other random weights): the caller then pretrains."""
    found = bundles.find_bundle(path.stem)
    if found is None:
        return None
    learned, card = found
    fresh = _seeded_initial_state(card["arch"], _redraw_seed(card))
    state = {name: learned.get(name, fresh[name]) for name in fresh}
    if set(state) != set(learned) | set(card["redrawn"]) or bundles.state_digest(state) != card["state_digest"]:
        logger.warning("The bundled backbone %s does not rebuild exactly with torch %s; pretraining it instead",
                       path.stem, torch.__version__)
        return None
    torch_save_atomic(state, path)
    card = card | {"bundled": True}
    write_json_atomic(path.with_suffix(".json"), card)
    logger.info("Installed the offline backbone bundled with the package at %s", path)
    return PretrainedBackbone(path, card)


def bundle_backbone(backbone: PretrainedBackbone, folder: str | os.PathLike | None = None) -> Path:
    """Write ``backbone`` as a bundle into ``folder`` (default: the package's own): the tensors that
    equal the seeded draw of its re-initialised blocks are left out, to be drawn again on install."""
    state = read_state_dict(backbone.path)
    fresh = _seeded_initial_state(backbone.card["arch"], _redraw_seed(backbone.card))
    redrawn = [name for name, tensor in state.items()
               if name in fresh and fresh[name].shape == tensor.shape and torch.equal(fresh[name], tensor)]
    card = {name: value for name, value in backbone.card.items() if name != "bundled"}
    return bundles.write_bundle(state, card, redrawn, folder)


def _prefixes(blocks: list[str]) -> tuple[str, ...]:
    return tuple(f"{part}." for name in blocks for part in name.split("+"))


def recalibrate_batchnorm(model: nn.Module, blocks: list[str], loader, max_images: int = 10_000,
                          seed: int = 0) -> None:
    """Re-estimate the BatchNorm statistics of ``blocks`` from up to ``max_images`` of ``loader``
    (a plain average over the batches), the other weights untouched. Random blocks put on top of
    trained ones keep init statistics (mean 0, variance 1) that do not fit what flows into them
    now: a frozen extractor would use those in eval mode. The loader's order (and its augmentation)
    is drawn from ``seed``, torch's global generator left as it was, so the statistics do not
    depend on what ran before."""
    norms = [m for name, m in model.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and f"{name}.".startswith(_prefixes(blocks))]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training, seen = model.training, 0
    model.train()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        for inputs, _ in loader:
            model(inputs)
            seen += len(inputs)
            if seen >= max_images:
                break
    model.train(was_training)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def pretraining_precision(device: str | torch.device) -> str:
    """The arithmetic of pretraining: fp32 on CPUs, where the bundled backbone was trained in fp32
    (whatever ``precision=auto`` picks for fine-tuning there); ``auto`` (bf16) on CUDA."""
    return "auto" if resolve_device(device).type == "cuda" else "fp32"


def _pretrain_and_save(arch: str, source: str, recipe: dict[str, Any], path: Path, data_dir, device: str,
                       progress: bool) -> PretrainedBackbone:
    sizes = dict(batch_size=recipe["batch_size"], val_fraction=0.0, train_subset=recipe["train_size"],
                 test_subset=recipe["test_size"], seed=recipe["seed"], device=device)
    if source == "fractals":
        data = load_fractals(recipe["classes"], **sizes)
    else:
        data = load_data(source, data_dir=data_dir, **sizes)
    import torchvision

    torch.manual_seed(recipe["seed"])
    model = torchvision.models.get_model(arch, weights=None, num_classes=data.num_classes)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    scheduler = make_scheduler(optimizer, "onecycle", recipe["epochs"], len(data["train"]),
                               warmup_epochs=1 if recipe["epochs"] > 1 else 0)
    logger.info("Pretraining %s on %s (%d classes, %d images, %d epochs); saved to %s for reuse", arch, source,
                data.num_classes, data.sizes["train"], recipe["epochs"], path)
    started = time.time()
    model, _, accuracies = train_val_model(model, nn.CrossEntropyLoss(label_smoothing=0.1), optimizer, data,
                                           recipe["epochs"], scheduler, log_interval=1, device=device,
                                           seed=recipe["seed"], progress=progress,
                                           scheduler_interval=scheduler_interval("onecycle"),
                                           precision=pretraining_precision(device),
                                           checkpoint=checkpoint_path(path, arch, source, recipe))
    kept, reset = reinitialize_after(model, arch, recipe["keep_blocks"], _redraw_seed(recipe), recipe["trained_share"])
    recalibrate_batchnorm(model, reset, data["train"], seed=recipe["seed"])
    card = {"arch": arch, "source": _source_name(source), **source_settings(source), "class_names": data.classes,
            **recipe, "kept_blocks": kept, "reinitialized_blocks": reset,
            "source_test_acc": accuracies["test"][best_epoch(accuracies)],
            "seconds": round(time.time() - started, 1), "package_version": __version__, "key": path.stem}
    state = {k: v.cpu().contiguous() for k, v in model.state_dict().items()}
    torch_save_atomic(state, path)
    write_json_atomic(path.with_suffix(".json"), card)
    return PretrainedBackbone(path, card)


def describe_backbone(card: dict[str, Any]) -> str:
    """One line on a pretrained backbone from its card: source task, size, source accuracy, and what
    of its training each block keeps."""
    line = (f"{len(card['class_names'])} classes of {Path(card['source']).name}, {card['train_size']} images, "
            f"{card['epochs']} epochs, source test accuracy {100 * card['source_test_acc']:.0f}%; "
            f"trained: {', '.join(card['kept_blocks'])}")
    if card["reinitialized_blocks"]:
        share = card.get("trained_share", 0.0)  # cards written before the setting: put back to random
        line += f"; {', '.join(card['reinitialized_blocks'])}: " + (
            "random weights" if share == 0 else f"{share:.0%} trained weights, {1 - share:.0%} random")
    return line


def pretrained_backbone_path(arch: str = "resnet18", progress: bool = True) -> Path:
    """Path of the default offline backbone for ``arch`` (weights="synthetic"), installed from its bundle or
    pretrained on first use."""
    return pretrain(arch, DEFAULT_SOURCE, progress=progress).path
