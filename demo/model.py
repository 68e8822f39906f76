"""The demo's model: a small CNN for 8x8 digit images, and what it needs around it.

Imports torch and numpy only, so the benchmark's Mosaic side (another environment) can
train the very same model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["DigitsCNN", "scale_pixels", "train_step"]


def scale_pixels(images: np.ndarray) -> np.ndarray:
    """Grey levels 0..16 of a batch ``(B, 8, 8)`` -> float32 ``(B, 1, 8, 8)`` in [0, 1].

    A FieldSpec transform: module-level, so it pickles to spawned workers too.
    """
    return (np.asarray(images, np.float32) / 16.0)[:, None, :, :]


class DigitsCNN(nn.Module):
    """Two 3x3 convolutions, one 2x2 pooling, two linear layers (~70k parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, 4, 4)
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, Any]) -> float:
    """One optimisation step on a batch ``{"image": (B,1,8,8) float, "label": (B,) int}``."""
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(batch["image"]), batch["label"].long())
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def accuracy(model: nn.Module, batches: Any) -> float:
    """Share of correctly classified samples over ``batches`` (dicts as for train_step)."""
    model.eval()
    right = total = 0
    for batch in batches:
        predicted = model(batch["image"]).argmax(1)
        right += int((predicted == batch["label"].long()).sum())
        total += len(predicted)
    model.train()
    return right / max(total, 1)
