"""A frozen backbone prepared for inference only.

Feature extraction runs the backbone in eval mode and never trains it, so it can run a copy made
for inference, with every BatchNorm folded into the convolution before it (``torch.fx``'s
conv-BatchNorm fusion): the same function of the input, without a pass over the activations per
BatchNorm. The features equal those of the plain model up to float rounding (about 1e-6 relative).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.fx.experimental import optimization


def inference_model(model: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``model`` (in eval mode, on ``device``, channels-last) for inference, with every
    BatchNorm folded into the convolution before it. A model that torch.fx cannot trace (Python
    control flow on tensors) is returned itself: slower, the same features."""
    model = model.to(device=device, memory_format=torch.channels_last).eval()
    try:
        return optimization.fuse(model)
    except Exception:  # noqa: BLE001 - tracing user models fails in many ways; the plain model is always correct
        return model
