"""The instability probe of Summers & Dinneen (ICML 2021): flip the lowest mantissa bit of one
initial weight, the smallest change a float32 model can take, and see how far training carries it.

Which weight is a function of the bitflip seed and the initial weights (the grid draws one seed per
repeat), chosen uniformly over the float32 parameter elements that are not zero, so every layer can
be hit in proportion to the values it carries. Why not zeros: a zero's lowest bit makes the smallest
subnormal, 1.4e-45, which GPU kernels flush to zero and the first update's rounding absorbs, so the
probe would change nothing. 94% of airbench_net's initial weights are zeros (its identity-initialised
convolutions): drawn over every element, all 20 flips of a cifar10-fast study landed on one and every
run ended on the control's weights (bench/RESULTS.md, 2026-12-03, third session).
"""

from __future__ import annotations

import numpy as np
import torch

from trainables.digests import state_sha256


def _bits(model: torch.nn.Module) -> np.ndarray:
    return np.concatenate([p.detach().cpu().reshape(-1).view(torch.uint8).numpy() for p in model.parameters()])


def flip_one_bit(model: torch.nn.Module, seed: int) -> dict[str, object]:
    """Flip the lowest mantissa bit of one nonzero float32 weight chosen by `seed`, in place, and
    prove that exactly one bit of the model changed. Returns what changed, for the trial's result:
    the parameter, the element, the value before and after, the digest of the weights before."""
    params = [(name, p) for name, p in model.named_parameters() if p.dtype == torch.float32]
    nonzero = [torch.nonzero(p.detach().reshape(-1)).reshape(-1) for _, p in params]
    ends = np.cumsum([len(n) for n in nonzero])
    if not len(ends) or ends[-1] == 0:
        raise ValueError("the bitflip arm needs a nonzero float32 parameter; this model has none")
    k = int(np.random.default_rng(seed).integers(ends[-1]))
    which = int(np.searchsorted(ends, k, side="right"))
    name, param = params[which]
    index = int(nonzero[which][k - (int(ends[which - 1]) if which else 0)])
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
