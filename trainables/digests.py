"""SHA-256 digests that prove what the determinism contract claims.

init_sha256 and data_sha256 must agree across all repeats of a configuration that keep those
streams (else the repeats differ by more than CUDA); weights_sha256 must agree across deterministic
repeats. order_sha256, augment_sha256 and dropout_sha256 each digest one seed stream alone.
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

    @classmethod
    def of(cls, *parts: torch.Tensor | np.ndarray) -> str:
        digest = cls()
        digest.update(*parts)
        return digest.hexdigest()


def rng_sha256() -> str:
    """Digest of torch's generators as they stand (the host's, and each CUDA device's once CUDA is
    up): which stream the next random draws of the model come from."""
    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states += torch.cuda.get_rng_state_all()
    return StreamDigest.of(*states)
