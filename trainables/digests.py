"""SHA-256 digests that prove what the determinism contract claims.

init_sha256 and data_sha256 must agree across all repeats of a configuration (else the repeats
differ by more than CUDA); weights_sha256 must agree across deterministic repeats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import torch


def _tensor_bytes(t: torch.Tensor) -> bytes:
    # why: a byte view works for every dtype (bf16 included) and is exact
    return t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """Digest of a state_dict: names, dtypes, shapes and every byte, buffers included."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


class StreamDigest:
    """Running digest of what the model was fed: plans, example indices, pixels, labels."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, *parts: torch.Tensor | np.ndarray) -> None:
        for p in parts:
            if isinstance(p, np.ndarray):
                p = torch.from_numpy(np.ascontiguousarray(p))
            self._h.update(f"{p.dtype}|{tuple(p.shape)}|".encode())
            self._h.update(_tensor_bytes(p))

    def hexdigest(self) -> str:
        return self._h.hexdigest()
