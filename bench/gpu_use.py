"""How busy every GPU was while a command ran (issue #13, item 4): NVML's utilisation and memory
of each GPU, and its SM clock, power and reasons for holding the clock down (issue #9: did the card
slow itself while epochs spread?), sampled in a thread, summarised per GPU. Use it around any
command, the user's own:

    python bench/gpu_use.py --csv /tmp/gpu_use.csv -- python sweeps/run.py --dataset sdnet --data-dir /tmp/sdnet

or from Python (bench/packing.py does) with `with Sampler() as gpus: ...; print(gpus.summary())`.
Utilisation is NVML's: the share of the last sample period in which a kernel ran, so a GPU whose
kernels are small reads busy while its multiprocessors idle; it says whether a GPU waited, not how
well it was used.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

# NVML's clock-event reasons that mean the card slowed itself (power cap, thermal or hardware
# slowdown, power brake), as opposed to idling or running at clocks someone set
SLOWDOWN_REASONS = 0x4 | 0x8 | 0x20 | 0x40 | 0x80


class Sampler:
    """Samples every GPU's utilisation, memory, SM clock, power and clock-event reasons every
    `period` seconds while the block runs."""

    def __init__(self, period: float = 0.5) -> None:
        import pynvml

        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise RuntimeError(f"NVML cannot be read here ({exc}): no NVIDIA GPU or driver") from None
        self.nvml, self.period, self.rows = pynvml, period, []
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(self.period):
            for index, handle in enumerate(self.handles):
                use = self.nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
                clock = self.nvml.nvmlDeviceGetClockInfo(handle, self.nvml.NVML_CLOCK_SM)
                power = self.nvml.nvmlDeviceGetPowerUsage(handle) / 1000
                reasons = self.nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)
                self.rows.append((time.monotonic() - start, index, use.gpu, memory.used / 2**30, clock, power, reasons))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def frame(self) -> pd.DataFrame:
        columns = ["t_s", "gpu", "util_pct", "memory_gib", "sm_clock_mhz", "power_w", "clock_reasons"]
        return pd.DataFrame(self.rows, columns=columns)

    def summary(self) -> str:
        """One line per GPU: mean and median utilisation, the share of samples at 0%, peak memory; then
        the SM clock's range and median while busy, peak power, and the share of samples slowed by the card."""
        frame = self.frame()
        if frame.empty:
            return "no GPU samples (the block ended within one period)"
        lines = []
        for gpu, g in frame.groupby("gpu"):
            lines.append(
                f"GPU {gpu}: utilisation mean {g['util_pct'].mean():.0f}%, median {g['util_pct'].median():.0f}%, "
                f"idle in {(g['util_pct'] == 0).mean():.0%} of {len(g)} samples; memory peak {g['memory_gib'].max():.1f} GiB"
            )
            busy = g[g["util_pct"] > 0]
            clock = (
                f"SM clock while busy {busy['sm_clock_mhz'].min()}-{busy['sm_clock_mhz'].max()} MHz, "
                f"median {busy['sm_clock_mhz'].median():.0f}"
                if len(busy)
                else "never busy"
            )
            slowed = (g["clock_reasons"] & SLOWDOWN_REASONS) != 0
            lines.append(
                f"  {clock}; power peak {g['power_w'].max():.0f} W; slowed by power or heat in {slowed.mean():.0%} of samples"
            )
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(usage="%(prog)s [--period S] [--csv FILE] -- COMMAND ...")
    parser.add_argument("--period", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--csv", type=Path, help="write every sample here")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    try:
        sampler = Sampler(args.period)
    except RuntimeError as exc:
        sys.exit(f"bench/gpu_use.py: {exc}")
    start = time.time()
    with sampler:
        code = subprocess.call(command)
    print(f"\n{' '.join(command)}: exit {code} after {time.time() - start:.0f} s\n{sampler.summary()}")
    if args.csv:
        sampler.frame().to_csv(args.csv, index=False)
    sys.exit(code)


if __name__ == "__main__":
    main()
