"""Where a trial process's first seconds go: importing torch, Ray Tune and the
trainable, and starting CUDA, each timed in a fresh process; CUDA's start again while another
process holds the GPU driver open (through NVML, or with a CUDA context of its own), since with
nothing holding it the driver may set itself up anew for every process. Usage on a GPU machine:
    python bench/cuda_init.py [--ray: CUDA's start inside fresh Ray worker processes]
                              [--setup: a trial's set-up steps one by one, in fresh processes]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBES = {
    "import torch": "import torch",
    "import torch, ray.tune": "import torch; from ray import tune",
    "import trainables.tune_entry": "import trainables.tune_entry",
    "torch.cuda.init() after import": "import torch, time; t = time.perf_counter(); torch.cuda.init(); print(time.perf_counter() - t)",
}
# a trial's own order: seeds and flags (determinism.apply), CUDA, a first tensor, a first convolution
SETUP = """
import time; t = [time.perf_counter()]
import torch; from trainables import determinism; t.append(time.perf_counter())
determinism.seed_everything(0); t.append(time.perf_counter())
determinism.set_precision(True, False); torch.use_deterministic_algorithms(False); torch.backends.cudnn.benchmark = True
t.append(time.perf_counter())
torch.cuda.init(); t.append(time.perf_counter())
x = torch.zeros(8, 3, 32, 32, device="cuda"); t.append(time.perf_counter())
torch.nn.functional.conv2d(x, torch.zeros(4, 3, 3, 3, device="cuda")); torch.cuda.synchronize(); t.append(time.perf_counter())
names = ("imports", "seeds", "flags", "cuda.init", "first tensor", "first conv")
print(", ".join(f"{n} {b - a:.2f}" for n, a, b in zip(names, t, t[1:])))
"""
HOLDERS = {
    "NVML handle": "import pynvml, time; pynvml.nvmlInit(); time.sleep(600)",
    "CUDA context": "import torch, time; torch.cuda.init(); torch.zeros(1, device='cuda'); time.sleep(600)",
}


def run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def timed(code: str) -> float:
    start = time.perf_counter()
    out = run(code)
    total = time.perf_counter() - start
    return float(out.splitlines()[-1]) if "print" in code else total


def in_ray_workers() -> None:
    """torch.cuda.init() in fresh Ray worker processes holding one GPU, as trials do."""
    import ray

    ray.init(log_to_driver=False)

    @ray.remote(num_gpus=1, max_calls=1)  # max_calls=1: a fresh process for each call, as a trial gets
    def probe() -> str:
        import os

        import torch

        start = time.perf_counter()
        torch.cuda.init()
        env = {k: v for k, v in os.environ.items() if k.startswith(("CUDA", "NVIDIA", "OMP"))}
        return f"{time.perf_counter() - start:.2f} s {env}"

    for _ in range(3):
        print(f"torch.cuda.init() in a Ray worker with num_gpus=1: {ray.get(probe.remote())}", flush=True)
    ray.shutdown()


def main() -> None:
    if sys.argv[1:] == ["--ray"]:
        in_ray_workers()
        return
    if sys.argv[1:] == ["--setup"]:
        for _ in range(3):
            print(f"a trial's set-up, in seconds: {run(SETUP)}", flush=True)
        return
    for name, code in PROBES.items():
        print(f"{name}: {', '.join(f'{timed(code):.2f}' for _ in range(3))} s (three fresh processes)", flush=True)
    init = PROBES["torch.cuda.init() after import"]
    for holder, code in HOLDERS.items():
        proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(8)  # let it start
        print(
            f"torch.cuda.init() while another process holds a {holder}: "
            f"{', '.join(f'{timed(init):.2f}' for _ in range(3))} s",
            flush=True,
        )
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
