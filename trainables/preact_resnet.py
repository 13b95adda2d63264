"""PreActResNet-18 for 32x32 inputs (He et al., "Identity Mappings in Deep Residual Networks").

The CIFAR variant the reference study trained: a 3x3 stem with no pooling, four stages of two
pre-activation basic blocks (64, 128, 256, 512 channels, strides 1, 2, 2, 2), a final BN-ReLU,
global average pooling and one linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class PreActResNetSpec:
    blocks: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage; (2, 2, 2, 2) is the 18-layer net
    widths: tuple[int, ...] = (64, 128, 256, 512)  # channels per stage
    num_classes: int = 10
    in_chans: int = 3


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice; the shortcut takes the pre-activated input when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    def __init__(self, spec: PreActResNetSpec) -> None:
        super().__init__()
        self.stem = nn.Conv2d(spec.in_chans, spec.widths[0], 3, 1, 1, bias=False)
        layers, cin = [], spec.widths[0]
        for i, (n, cout) in enumerate(zip(spec.blocks, spec.widths)):
            for j in range(n):
                layers.append(PreActBlock(cin, cout, stride=2 if i > 0 and j == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)  # why: pre-activation blocks leave the last sum un-normalised
        self.fc = nn.Linear(cin, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.layers(self.stem(x))))
        return self.fc(x.mean((2, 3)))  # why: adaptive_avg_pool2d has no deterministic CUDA backward

    def get_classifier(self) -> nn.Module:
        """The last layer, named as timm names it, for the similarity analysis."""
        return self.fc
