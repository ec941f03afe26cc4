"""Formula-driven source images: fractals of iterated function systems on procedural noise.

Pretraining without natural images (Kataoka et al. 2020, FractalDB; Anderson & Farrell 2022):
a class is one iterated function system (IFS), a few random contractive affine maps whose
attractor is a fractal; every image of the class renders that attractor again with its own
jitter of the maps, placement, scale, rotation, mirror, colours and blur, on a background of
coloured 1/f noise, the power spectrum of natural images (Baradad et al. 2021). Each class also
has its own colours, one per map and one for the background, which every image varies around:
as in photographs, colour tells part of the class and shape the rest. The network learns edge,
texture, shape and colour filters, which also serve real photographs.

Everything is drawn from one seed with torch, vectorised over images and points (no Python
loop per point or per image), CIFAR-shaped: ``(n, 32, 32, 3)`` uint8.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .loaders import ImageArrayDataset, generated_splits

GENERATOR = "ifs-fractals-on-noise"
VERSION = 2
"""Name and version of the generator; a pretrained backbone's card records both, so a change of
the images (a new version) never reuses a backbone trained on the old ones. Colours belong to
the class: drawn per image, with a quarter of the images grey, they taught the backbone to look
past colour, and it lost to scratch on colour photographs."""
FRACTAL_CLASSES = 40
"""Classes (systems) of the ``fractals`` data set and of the default backbone's source; a pretraining
recipe sets its own (``classes``: 1000 for the ``fractals-1k`` recipe, after FractalDB-1k)."""
DEFAULT_JITTER = 0.03
"""Relative noise on each map's coefficients per image: variation within a class."""
COLOUR_JITTER = 0.15
"""Standard deviation of the per-image change of each class colour channel (colours in [0, 1])."""
GREY_SHARE = 0.1
"""Share of images made grey (scans and old photos are)."""
IMAGE_SIZE = 32
SUPERSAMPLE = 2  # points are splatted on a grid this many times finer, then averaged down
CHAINS, STEPS, BURN_IN = 384, 14, 4  # chaos-game chains per image, steps, steps before points count
LUMA = torch.tensor([0.299, 0.587, 0.114])  # brightness of an RGB colour (ITU-R BT.601)
CHUNK = 500  # images rendered per seeded chunk (bounds memory)


def sample_systems(num_classes: int, seed: int = 0, maps: tuple[int, int] = (2, 4)) -> torch.Tensor:
    """Draw ``num_classes`` iterated function systems: a tensor ``(classes, 4, 6)`` of affine maps
    ``(a, b, c, d, e, f)`` (x' = a x + b y + e, y' = c x + d y + f), unused maps zero-weighted.

    Each map is rotation x scaling x rotation with singular values drawn, as in Anderson & Farrell
    (2022), so that the sum of ``s1 + 2 s2`` over the maps lies in ``[(5 + N) / 2, (6 + N) / 2]``
    for N maps: the range where attractors are neither dust nor a filled blob.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r}: expected a positive integer")
    gen = torch.Generator().manual_seed(seed)
    systems = torch.zeros(num_classes, maps[1], 6)
    counts = torch.randint(maps[0], maps[1] + 1, (num_classes,), generator=gen)
    for k in range(num_classes):  # one small draw per class: classes, not images or points
        n = int(counts[k])
        alpha = (5 + n) / 2 + torch.rand((), generator=gen).item() / 2
        shares = -torch.log(torch.rand(n, generator=gen))
        budget = alpha * shares / shares.sum()  # each map's s1 + 2 s2
        s1 = budget * (0.3 + 0.7 * torch.rand(n, generator=gen))
        s1 = torch.minimum(s1, torch.full_like(s1, 0.95))
        s2 = ((budget - s1) / 2).clamp(0.02, 0.95)
        s1, s2 = torch.maximum(s1, s2), torch.minimum(s1, s2)
        theta, phi = torch.rand(2, n, generator=gen) * 2 * math.pi
        flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
        linear = _rotations(theta) @ torch.diag_embed(torch.stack([s1, s2 * flip], -1)) @ _rotations(phi)
        shift = torch.rand(n, 2, generator=gen) * 2 - 1
        systems[k, :n] = torch.cat([linear.reshape(n, 4), shift], 1)
    return systems


def class_colours(num_classes: int, seed: int = 0, maps: int = 4) -> torch.Tensor:
    """The colours of each class, ``(classes, 1 + maps, 3)`` in [0, 1]: its background's, then one per
    map; from ``seed``, drawn apart from the systems (the shapes of a seed do not depend on them)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 17)
    return torch.rand(num_classes, 1 + maps, 3, generator=gen)


def _rotations(angles: torch.Tensor) -> torch.Tensor:
    """2x2 rotation matrices, one per angle: ``(..., 2, 2)``."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    return torch.stack([cos, -sin, sin, cos], -1).view(*angles.shape, 2, 2)


def _map_weights(systems: torch.Tensor) -> torch.Tensor:
    det = (systems[..., 0] * systems[..., 3] - systems[..., 1] * systems[..., 2]).abs()
    used = systems.abs().sum(-1) > 0
    weights = torch.where(used, det + 1e-3, torch.zeros_like(det))
    return weights / weights.sum(-1, keepdim=True)


def _chaos_game(systems: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the chaos game for each image's system: points ``(n, K, 2)`` and the map that placed each."""
    n = systems.shape[0]
    cumulative = _map_weights(systems).cumsum(-1)
    xy = torch.rand(n, CHAINS, 2, generator=gen) * 2 - 1
    points, last_maps = [], []
    rows = torch.arange(n).view(n, 1)
    for step in range(STEPS):  # a loop over steps only; every image and chain moves at once
        u = torch.rand(n, CHAINS, 1, generator=gen)
        which = (u > cumulative.unsqueeze(1)).sum(-1).clamp(max=systems.shape[1] - 1)  # (n, CHAINS)
        m = systems[rows, which]  # (n, CHAINS, 6)
        x, y = xy[..., 0], xy[..., 1]
        xy = torch.stack([m[..., 0] * x + m[..., 1] * y + m[..., 4], m[..., 2] * x + m[..., 3] * y + m[..., 5]], -1)
        if step >= BURN_IN:
            points.append(xy)
            last_maps.append(which)
    return torch.cat(points, 1), torch.cat(last_maps, 1)


def _noise_backgrounds(base: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Noise around each image's ``base`` colour ``(n, 3)`` with a 1/f^a power spectrum (a drawn
    per image in [1, 2.5]), in [0, 1]."""
    n = base.shape[0]
    fy = torch.fft.fftfreq(size).view(size, 1)
    fx = torch.fft.rfftfreq(size).view(1, -1)
    radius = torch.sqrt(fx * fx + fy * fy).clamp(min=1.0 / size)
    exponent = 1.0 + 1.5 * torch.rand(n, 1, 1, 1, generator=gen)
    spectrum = torch.complex(torch.randn(n, 3, size, size // 2 + 1, generator=gen),
                             torch.randn(n, 3, size, size // 2 + 1, generator=gen)) / radius ** exponent
    noise = torch.fft.irfft2(spectrum, s=(size, size))
    noise = noise - noise.mean((2, 3), keepdim=True)
    noise = noise / noise.flatten(1).std(1).view(n, 1, 1, 1).clamp(min=1e-6)
    mix = torch.rand(n, 3, 3, generator=gen) + torch.eye(3) * 2  # correlated channels, like real colours
    noise = torch.einsum("ncij,ndc->ndij", noise, mix / mix.sum(-1, keepdim=True))
    contrast = 0.05 + 0.2 * torch.rand(n, 1, 1, 1, generator=gen)
    return (base.view(n, 3, 1, 1) + contrast * noise).clamp(0, 1)


def _contrasting_palette(background: torch.Tensor, colours: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image's map ``colours`` ``(n, maps, 3)`` with their brightness moved to differ from the
    mean brightness of the image's background by 0.25 to 0.6 (hue kept): the fractal stays
    visible in grey."""
    n, maps = colours.shape[:2]
    behind = (background.mean((2, 3)) @ LUMA).view(n, 1)
    gap = 0.25 + 0.35 * torch.rand(n, maps, generator=gen)
    darker = ((torch.rand(n, maps, generator=gen) < 0.5) & (behind - gap >= 0)) | (behind + gap > 1)
    target = torch.where(darker, behind - gap, behind + gap).clamp(0, 1)
    return (colours - (colours @ LUMA).unsqueeze(-1) + target.unsqueeze(-1)).clamp(0, 1)


def _render(systems: torch.Tensor, colours: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Render one image per system (already jittered) with its ``colours`` ``(n, 1 + maps, 3)``
    (background, then maps): float ``(n, 3, 32, 32)`` in [0, 1]."""
    n, size, fine = systems.shape[0], IMAGE_SIZE, IMAGE_SIZE * SUPERSAMPLE
    points, which = _chaos_game(systems, gen)
    points = torch.nan_to_num(points).clamp(-1e3, 1e3)
    # place the attractor: centre its bounding box, random scale, rotation, mirror and offset
    low, high = points.amin(1, keepdim=True), points.amax(1, keepdim=True)
    centre, extent = (low + high) / 2, (high - low).amax(-1, keepdim=True).clamp(min=1e-6)
    scale = (0.55 + 0.4 * torch.rand(n, 1, 1, generator=gen)) * fine / extent
    angle = (torch.rand(n, generator=gen) - 0.5) * 1.0  # about +-30 degrees: images have an up
    mirror = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    rotation = _rotations(angle) @ torch.diag_embed(torch.stack([torch.ones(n), mirror], -1))
    offset = fine / 2 + (torch.rand(n, 1, 2, generator=gen) - 0.5) * fine * 0.25
    pixels = ((points - centre) * scale) @ rotation.transpose(1, 2) + offset
    col, row = pixels[..., 0].long(), pixels[..., 1].long()
    inside = (col >= 0) & (col < fine) & (row >= 0) & (row < fine)
    flat = (torch.arange(n).view(n, 1) * fine * fine + row * fine + col)[inside]
    # each map paints in its own colour: parts of the attractor differ in colour, as in a photo
    background = _noise_backgrounds(colours[:, 0], size, gen)
    palette = _contrasting_palette(background, colours[:, 1:], gen)
    point_colours = palette[torch.arange(n).view(n, 1).expand_as(which)[inside], which[inside]]
    count = torch.zeros(n * fine * fine).index_add_(0, flat, torch.ones(flat.numel()))
    paint = torch.zeros(n * fine * fine, 3).index_add_(0, flat, point_colours)
    count = count.view(n, 1, fine, fine)
    paint = paint.view(n, fine, fine, 3).permute(0, 3, 1, 2)
    count, paint = F.avg_pool2d(count, SUPERSAMPLE), F.avg_pool2d(paint, SUPERSAMPLE)
    colour = paint / count.clamp(min=1e-6)
    density = count / count.flatten(1).quantile(0.9, dim=1).clamp(min=1e-6).view(n, 1, 1, 1)
    alpha = (density * (0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=gen))).clamp(0, 1)
    image = background * (1 - alpha) + colour * alpha
    return _photometric(image, gen).clamp(0, 1)


def _photometric(image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """What cameras and scanners do to an image: colours less or more saturated (a share
    ``GREY_SHARE`` of the images grey), and a third of them low resolution (drawn at 8 or 16
    pixels and scaled up) or softly blurred."""
    n, size = image.shape[0], image.shape[-1]
    grey = (image * LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True)
    coloured = torch.rand(n, 1, 1, 1, generator=gen) >= GREY_SHARE
    saturation = (0.4 + 0.8 * torch.rand(n, 1, 1, 1, generator=gen)) * coloured
    image = grey + saturation * (image - grey)
    kind = torch.rand(n, generator=gen)
    for low, chosen in ((8, kind < 0.1), (16, (kind >= 0.1) & (kind < 0.2))):
        if chosen.any():
            small = F.interpolate(image[chosen], size=(low, low), mode="area")
            image[chosen] = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    blur = (kind >= 0.2) & (kind < 0.35)
    if blur.any():
        kernel = torch.tensor([1.0, 2.0, 1.0]) / 4
        soft = F.conv2d(F.pad(image[blur].reshape(-1, 1, size, size), (1, 1, 1, 1), mode="replicate"),
                        (kernel.view(3, 1) * kernel.view(1, 3)).view(1, 1, 3, 3))
        image[blur] = soft.view(-1, 3, size, size)
    return image


def make_fractals(n: int, num_classes: int = FRACTAL_CLASSES, seed: int = 0, split: str = "train",
                  jitter: float = DEFAULT_JITTER) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` labelled fractal images of ``num_classes`` systems (class = system).

    Returns ``(images, labels)``: uint8 ``(n, 32, 32, 3)`` and int64 ``(n,)``. The systems depend
    on ``seed`` only, so train and test splits share classes; the same ``(n, seed, split)`` gives
    the same images. ``jitter``: relative noise added to every map's coefficients per image
    (within-class variation); colours vary by ``COLOUR_JITTER``.
    """
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"n={n!r}: expected a positive number of images")
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: expected train or test")
    if not 0 <= jitter < 0.5:
        raise ValueError(f"jitter={jitter!r}: expected a number in [0, 0.5)")
    systems = sample_systems(num_classes, seed)
    colours = class_colours(num_classes, seed, systems.shape[1])
    images, labels = [], []
    for chunk in range(math.ceil(n / CHUNK)):
        gen = torch.Generator().manual_seed((seed * 1_000_003 + ("train", "test").index(split)) * 7919 + chunk)
        count = min(CHUNK, n - chunk * CHUNK)
        chunk_labels = torch.randint(num_classes, (count,), generator=gen)
        chosen = systems[chunk_labels]
        chosen = chosen * (1 + jitter * torch.randn(chosen.shape, generator=gen)) * (chosen != 0)
        tinted = colours[chunk_labels] + COLOUR_JITTER * torch.randn(count, *colours.shape[1:], generator=gen)
        images.append((_render(chosen, tinted.clamp(0, 1), gen) * 255).round().to(torch.uint8))
        labels.append(chunk_labels)
    array = torch.cat(images).permute(0, 2, 3, 1).contiguous().numpy()
    return array, torch.cat(labels).numpy()


FRACTAL_SIZES = {"train": 10_000, "test": 1_000}
"""The default sizes of the fractal source task's splits."""


def load_fractal_arrays(train_size: int = FRACTAL_SIZES["train"], test_size: int = FRACTAL_SIZES["test"],
                        seed: int = 0, num_classes: int = FRACTAL_CLASSES) -> dict[str, ImageArrayDataset]:
    """Render the formula-driven source task (see :mod:`pystatsml_tl.data.formulas`) as datasets keyed
    ``train`` and ``test``; classes are named ``ifs-00``, ``ifs-01``, ..."""
    return generated_splits(lambda size, split: make_fractals(size, num_classes, seed=seed, split=split),
                             [f"ifs-{k:02d}" for k in range(num_classes)], train_size, test_size)
