"""The training loss, and how its logits become class probabilities for the metrics."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class Loss:
    """Cross-entropy over classes, or (bce) one logit with positives weighted by negatives / positives."""

    def __init__(self, kind: str, train_labels: np.ndarray, device: torch.device, label_smoothing: float = 0.0) -> None:
        self.kind, self.label_smoothing = kind, label_smoothing
        positives = max(int((train_labels == 1).sum()), 1)
        self.pos_weight = torch.tensor(float((train_labels == 0).sum()) / positives, device=device)

    def outputs(self, num_classes: int) -> int:
        return 1 if self.kind == "bce" else num_classes

    def __call__(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(logits[:, 0], y.float(), pos_weight=self.pos_weight)
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        if self.kind == "bce":
            p = torch.sigmoid(logits.float()[:, 0])
            return torch.stack([1 - p, p], 1)
        return torch.softmax(logits.float(), 1)
