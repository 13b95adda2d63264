"""Claim: what the deterministic mode costs
per training step for each preset's model at the preset's image size and batch size.

Each (preset, mode) runs in its own process, set up by trainables.determinism.apply exactly as a
trial is, on random uint8 images already on the GPU (the data pipeline is not what is measured).
A model with an op lacking a deterministic kernel is reported with the op, not timed. Usage:
    python bench/determinism_overhead.py [--presets cifar10,sdnet,cbis] [--steps 20]
Record the printed table in bench/RESULTS.md with the card.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def child(preset_name: str, mode: str, steps: int, warmup: int) -> dict:
    import torch

    from sweeps.presets import PRESETS
    from trainables import determinism
    from trainables.loop import train_step
    from trainables.losses import Loss
    from trainables.models import create_model

    trial = PRESETS[preset_name]["trial"]
    sgd = PRESETS[preset_name]["optimizers"]["sgd"]
    size = tuple(trial["image_size"]) if trial["image_size"] != (0, 0) else (32, 32)
    determinism.apply(mode, 0, trial["conv_tf32"], trial["matmul_tf32"], False)
    device = torch.device("cuda")
    classes = 1 if trial["loss"] == "bce" else 10
    model = create_model(trial["model"], classes, 3).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=sgd["lr"], momentum=sgd["momentum"], weight_decay=sgd["weight_decay"]
    )
    labels = torch.randint(0, 2 if classes == 1 else classes, (trial["batch_size"],), device=device)
    loss_fn = Loss(trial["loss"], labels.cpu().numpy(), device)
    x = torch.randint(0, 256, (trial["batch_size"], 3, *size), dtype=torch.uint8, device=device)
    try:
        for step in range(warmup + steps):
            if step == warmup:
                torch.cuda.synchronize()
                start = time.perf_counter()
            train_step(model, optimizer, loss_fn, x.float() / 255 - 0.5, labels, contextlib.nullcontext())
        torch.cuda.synchronize()
    except RuntimeError as exc:
        return {"error": str(exc).splitlines()[0]}
    return {
        "step_ms": (time.perf_counter() - start) / steps * 1e3,
        "model": trial["model"],
        "size": size,
        "batch": trial["batch_size"],
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", default="cifar10,sdnet,cbis")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (cuDNN autotuning, allocator)")
    parser.add_argument("--child", nargs=2, metavar=("PRESET", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.steps, args.warmup)))
        return
    import torch

    print(
        f"{torch.cuda.get_device_name()} | torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()} | "
        f"{args.steps} timed steps after {args.warmup}, SGD, fp32 (TF32 convolutions as the presets)"
    )
    for preset in args.presets.split(","):
        results = {}
        for mode in ("nondeterministic", "deterministic"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    preset,
                    mode,
                    "--steps",
                    str(args.steps),
                    "--warmup",
                    str(args.warmup),
                ],
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            lines = out.stdout.strip().splitlines()
            results[mode] = (
                json.loads(lines[-1])
                if out.returncode == 0 and lines
                else {"error": out.stderr.strip().splitlines()[-1:]}
            )
        nd, d = results["nondeterministic"], results["deterministic"]
        if "error" in nd or "error" in d:
            print(f"{preset}: nondeterministic {nd.get('error', 'ok')} | deterministic {d.get('error', 'ok')}")
            continue
        print(
            f"{preset}: {nd['model']} {nd['size'][0]}x{nd['size'][1]} batch {nd['batch']}: "
            f"{nd['step_ms']:.1f} ms/step non-deterministic, {d['step_ms']:.1f} ms/step deterministic, "
            f"overhead {(d['step_ms'] / nd['step_ms'] - 1) * 100:+.1f}% (peak {max(nd['peak_gib'], d['peak_gib']):.1f} GiB)"
        )


if __name__ == "__main__":
    main()
