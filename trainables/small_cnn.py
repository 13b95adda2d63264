"""A small convolutional net for tiny images (the digits preset's 8x8 scans).

Convolutions with batch norm, like the paper's models, so that on a GPU the same
non-deterministic cuDNN kernels (weight-gradient atomics) are exercised, in seconds.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int, in_chans: int, width: int = 32, drop_rate: float = 0.0) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            block(in_chans, width), block(width, 2 * width), nn.MaxPool2d(2), block(2 * width, 4 * width)
        )
        self.drop = nn.Dropout(drop_rate)  # why: a model with training-time draws, for the dropout stream's tests
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(
            self.drop(self.features(x).mean((2, 3)))
        )  # why: adaptive pooling has no deterministic CUDA backward

    def get_classifier(self) -> nn.Module:
        return self.fc
