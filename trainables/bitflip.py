"""The instability probe of Summers & Dinneen (ICML 2021): flip the lowest mantissa bit of one
initial weight, the smallest change a float32 model can take, and see how far training carries it.

Which weight is a function of the bitflip seed alone (the grid draws one per repeat), chosen
uniformly over every float32 parameter element, so every layer can be hit in proportion to its size.
"""

from __future__ import annotations

import numpy as np
import torch

from trainables.digests import state_sha256


def _bits(model: torch.nn.Module) -> np.ndarray:
    return np.concatenate([p.detach().cpu().reshape(-1).view(torch.uint8).numpy() for p in model.parameters()])


def flip_one_bit(model: torch.nn.Module, seed: int) -> dict[str, object]:
    """Flip the lowest mantissa bit of one float32 weight chosen by `seed`, in place, and prove that
    exactly one bit of the model changed. Returns what changed, for the trial's result: the
    parameter, the element, the value before and after, the digest of the weights before."""
    params = [(name, p) for name, p in model.named_parameters() if p.dtype == torch.float32]
    if not params:
        raise ValueError("the bitflip arm needs float32 parameters; this model has none")
    ends = np.cumsum([p.numel() for _, p in params])
    k = int(np.random.default_rng(seed).integers(ends[-1]))
    which = int(np.searchsorted(ends, k, side="right"))
    name, param = params[which]
    index = k - (int(ends[which - 1]) if which else 0)
    unflipped = state_sha256(model.state_dict())
    before_bits = _bits(model)
    with torch.no_grad():
        flat = param.data.view(-1)  # why: a view of the parameter's own storage, so the flip lands in place
        before = float(flat[index])
        flat.view(torch.int32)[index] ^= 1  # why: bit 0 of an IEEE float32 is the mantissa's lowest
        after = float(flat[index])
    changed = int(np.unpackbits(before_bits ^ _bits(model)).sum())
    if changed != 1:
        raise RuntimeError(f"the bit flip changed {changed} bits of the model, not 1 ({name}[{index}])")
    return {
        "parameter": name,
        "index": index,
        "before": before,
        "after": after,
        "changed_bits": changed,
        "unflipped_init_sha256": unflipped,
    }
