"""The per-channel statistics each ``normalize`` choice subtracts and divides by, and its check."""
from .. import checks

NORMALIZATION_STATS = {
    "tutorial": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
"""Per-channel (mean, std) of each ``normalize`` choice: the tutorial's 0.5, or ImageNet's statistics."""

check_normalize = checks.one_of(tuple(NORMALIZATION_STATS), " or ")
"""The one check of ``normalize``: a key of :data:`NORMALIZATION_STATS`."""
