"""The CIFAR ResNets of He et al. ("Deep Residual Learning for Image Recognition", 2016, section
4.2), 6n + 2 layers: the family Summers & Dinneen ("Nondeterminism and Instability in Neural
Network Optimization", ICML 2021) took ResNet-14 from (n = 2) to measure each source of training
randomness on its own.

A 3x3 stem of 16 channels, three stages of n basic blocks (16, 32, 64 channels; strides 1, 2, 2),
global average pooling and one linear layer. Post-activation blocks (conv-BN-ReLU-conv-BN, sum,
ReLU), and the paper's parameter-free shortcut where the shape changes (option A: the input
subsampled by the stride and zero-padded to the new width), so that the 14 layers are the 14
weighted ones: 1 + 2 x 2 x 3 + 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ResNetCifarSpec:
    blocks: int = 2  # basic blocks per stage: n in 6n + 2 (2: ResNet-14, 3: ResNet-20)
    widths: tuple[int, ...] = (16, 32, 64)  # channels per stage
    num_classes: int = 10
    in_chans: int = 3


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """Option A: identity, subsampled and zero-padded in channels where the shape changes."""
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2)) if self.pad else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetCifar(nn.Module):
    def __init__(self, spec: ResNetCifarSpec) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(spec.in_chans, spec.widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(spec.widths[0]), nn.ReLU()
        )
        layers, cin = [], spec.widths[0]
        for i, cout in enumerate(spec.widths):
            for j in range(spec.blocks):
                layers.append(BasicBlock(cin, cout, stride=2 if i > 0 and j == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(
            self.layers(self.stem(x)).mean((2, 3))
        )  # why: adaptive pooling has no deterministic CUDA backward

    def get_classifier(self) -> nn.Module:
        return self.fc
