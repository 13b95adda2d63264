"""Where a trial's time goes (issue #9, item 2): one trial run as a forked trial runs it
(trainables.loop.run_trial), with torch.profiler over two steady epochs, and what its process is
made of.

    python bench/profile_trial.py --dataset cifar10-fast --data-dir /tmp/data/cifar10 --mode nondeterministic
    python bench/profile_trial.py --dataset digits --epochs 3   # CPU: checks the script

Prints every epoch's training, evaluation and checkpoint-save time and the garbage collector's
pauses in it (the spread between epochs); for the profiled epochs: the threads of the process (by name, from /proc), its CPU
affinity and the thread counts torch, OpenMP and MKL were given; the time per epoch in training,
in evaluation and in the checkpoint each epoch saves (as trainables.tune_entry saves it); the host
waits for the GPU per profiled epoch (synchronisations and device-to-host copies, from the
profiler's CUDA runtime events, beside the number of tensors a checkpoint copies); and the ops with the most self CPU and GPU time. --trace DIR also
writes a Chrome trace. Record what it prints in bench/RESULTS.md with card, commit and command.
"""

from __future__ import annotations

import argparse
import collections
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def threads() -> dict[str, int]:
    """The process's threads by name: torch's intra-op pool, CUDA's, Ray's, Python's own."""
    names = collections.Counter()
    for task in Path("/proc/self/task").iterdir():
        names[(task / "comm").read_text().strip()] += 1
    return dict(names)


def host_waits(prof: profile) -> dict[str, int]:
    """Calls that make the host wait for the GPU, by name, over the profiled span."""
    counts = collections.Counter()
    for event in prof.events():
        if event.name in SYNC_EVENTS or "DtoH" in event.name:
            counts[event.name] += 1
    return dict(counts)


class GcPauses:
    """Time the process spends in Python's garbage collector, per generation, while it is installed:
    a collection of the oldest generation in mid-epoch is one cause an epoch can take longer than the next."""

    def __init__(self) -> None:
        self.seconds: collections.Counter = collections.Counter()
        self.count: collections.Counter = collections.Counter()
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._start
            self.count[info["generation"]] += 1

    def take(self) -> str:
        """What was collected since the last take, as text; then starts again from zero."""
        text = (
            ", ".join(f"gen{g} {self.count[g]}x {self.seconds[g] * 1e3:.1f} ms" for g in sorted(self.count)) or "none"
        )
        self.seconds.clear()
        self.count.clear()
        return text


def tensors_in(state: object) -> int:
    """How many tensors a checkpoint's state holds: torch.save copies each CUDA one to the host by itself."""
    if isinstance(state, torch.Tensor):
        return 1
    if isinstance(state, dict):
        return sum(tensors_in(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(tensors_in(v) for v in state)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="cifar10-fast")
    parser.add_argument("--data-dir", default="")
    parser.add_argument("--mode", default="nondeterministic")
    parser.add_argument(
        "--epochs", type=int, default=4, help="epochs 2 and 3 are profiled; every epoch's times are printed"
    )
    parser.add_argument("--cores", type=int, default=0, help="pin to this many free cores first, as --pin-cpus does")
    parser.add_argument("--trace", type=Path, help="write a Chrome trace here")
    args = parser.parse_args()
    if args.epochs < 3:
        sys.exit("--epochs: at least 3 (epochs 2 and 3 are profiled)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from real_path import trial_config

    from trainables.loop import run_trial

    cfg = trial_config(args.dataset, args.data_dir, args.epochs, args.mode)
    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    prof = profile(activities=activities)
    seen: dict[str, object] = {}
    save_s: dict[int, float] = {}
    rows: dict[int, dict] = {}
    pauses, gc_per_epoch = GcPauses(), {}
    gc.callbacks.append(pauses)

    def on_epoch_start(epoch: int, _track) -> None:  # noqa: ANN001 (a Tracking)
        if epoch == 2:
            seen["threads"] = threads()
            prof.start()

    def report(metrics: dict, state: dict) -> None:
        gc_per_epoch[metrics["epoch"]] = pauses.take()  # the epoch's training and evaluation
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as directory:
            torch.save(state, Path(directory) / "state.pt")  # as trainables.tune_entry.reporter saves it
        save_s[metrics["epoch"]] = time.perf_counter() - start
        rows[metrics["epoch"]] = metrics
        seen["checkpoint_tensors"] = tensors_in(state)
        if metrics["epoch"] == 3:
            prof.stop()

    out = Path(tempfile.mkdtemp(prefix="profile_trial_"))
    run_trial(cfg, report, out, on_epoch_start=on_epoch_start, cores=args.cores)
    env = rows[args.epochs]["env"]
    steps = sum(1 for event in prof.events() if event.name.startswith("Optimizer.step#"))  # one per training step
    card = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"{card}, {os.cpu_count()} cores | {args.dataset}, {args.mode}, epochs 2-3 profiled ({steps} training steps)")
    print(
        f"process: affinity {sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}; "
        f"pinning {env.get('cpu_pinning')} {env.get('cpu_cores')}; torch threads {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, MKL_NUM_THREADS={os.environ.get('MKL_NUM_THREADS')}"
    )
    print("threads by name at epoch 2: " + ", ".join(f"{n} x{c}" for n, c in sorted(seen["threads"].items())))
    for epoch, r in sorted(rows.items()):
        print(
            f"epoch {epoch}: training {r['train_time_s']:.3f} s, evaluation {r['epoch_time_s'] - r['train_time_s']:.3f} s, "
            f"checkpoint save {save_s[epoch]:.3f} s; garbage collection {gc_per_epoch[epoch]}"
        )
    waits = host_waits(prof)
    print(
        "host waits for the GPU over the profiled epochs (training, evaluation and checkpoint): "
        + (", ".join(f"{n} {c} ({c / 2:.0f} per epoch)" for n, c in waits.items()) or "none recorded")
        + f"; the state a checkpoint saves holds {seen['checkpoint_tensors']} tensors, each copied to the host on its own"
    )
    table = prof.key_averages()
    print("\nops by self CPU time:\n" + table.table(sort_by="self_cpu_time_total", row_limit=15))
    if cuda:
        print("ops by GPU time:\n" + table.table(sort_by="self_cuda_time_total", row_limit=15))
    if args.trace:
        args.trace.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(args.trace / f"{args.dataset}_{args.mode}.json"))


if __name__ == "__main__":
    main()
