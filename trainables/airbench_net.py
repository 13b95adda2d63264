"""A small, fast CIFAR-10 network, written from the description in K. Jordan, "94% on CIFAR-10 in
3.29 Seconds on a Single GPU" (arXiv:2404.00498, 2024), section 3: the cifar10-fast preset's model.

A frozen 2x2 patch-whitening convolution, then three blocks of (conv, max-pool, batch norm, GELU,
conv, batch norm, GELU) of widths 64, 256, 256, a final max-pool and a linear layer whose output is
scaled by 1/9. Its tricks are each explained beside them. What the paper describes and this model
leaves out: lookahead, the whitening bias frozen after 3 epochs, and the 64x learning rate on the
batch-norm biases; the optimizer treats every parameter alike here, so that Adam and SGD compare.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class AirbenchSpec:
    widths: tuple[int, int, int] = (64, 256, 256)  # channels of the three blocks
    whiten_eps: float = 5e-4  # added to the patch covariance's eigenvalues before the inverse square root
    bn_momentum: float = 0.4  # torch's convention (weight of the newest batch): only ~50 steps per epoch
    logit_scale: float = 1 / 9  # why: keeps the initial logits small, like a lower temperature


def _block(cin: int, cout: int, momentum: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(cout, momentum=momentum),
        nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout, momentum=momentum),
        nn.GELU(),
    )


class AirbenchNet(nn.Module):
    def __init__(self, spec: AirbenchSpec, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.spec = spec
        patch = in_chans * 2 * 2
        # why: fixed to the data's whitening transform (init_from_data); only its bias learns
        self.whiten = nn.Conv2d(in_chans, 2 * patch, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.act = nn.GELU()
        w1, w2, w3 = spec.widths
        self.blocks = nn.Sequential(
            _block(2 * patch, w1, spec.bn_momentum), _block(w1, w2, spec.bn_momentum), _block(w2, w3, spec.bn_momentum)
        )
        self.pool = nn.MaxPool2d(3)  # 32 -> 31 (2x2 whitening) -> 15 -> 7 -> 3 -> 1
        self.head = nn.Linear(w3, num_classes, bias=False)
        for module in self.blocks.modules():
            if isinstance(module, nn.Conv2d):
                # why: partial identity init: the first in-channels filters pass their input on,
                # so the deep net starts close to a shallow one and trains faster early on
                nn.init.dirac_(module.weight.data[: module.in_channels])

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Set the whitening filters from normalised training images (N, C, H, W): the
        eigenvectors of the 2x2 patch covariance scaled by 1/sqrt(eigenvalue + eps), and their
        negatives, so that GELU passes both signs. Computed in float64 on the CPU, once per trial,
        from the same images in every repeat: the initial weights stay equal."""
        x = images.detach().to("cpu", torch.float64)
        patches = x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, x.shape[1] * 4)
        patches = patches - patches.mean(0)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + self.spec.whiten_eps)[:, None]).reshape(
            -1, x.shape[1], 2, 2
        )
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight.dtype))
        self.whiten.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.blocks(self.act(self.whiten(x))))
        return self.head(x.flatten(1)) * self.spec.logit_scale

    def get_classifier(self) -> nn.Module:
        return self.head
