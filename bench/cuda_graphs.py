"""Would CUDA graphs pay for a preset's trials (issue #30, item 4: measure before building)?

MPS gave 1.09-1.12x (bench/RESULTS.md), under the 1.2x bar, so the next lever must leave what a
trial computes unchanged. A packed cifar10 step is short (about 6 ms of kernels for PreActResNet-18
at batch 128): if the CPU's kernel launches hold it, replaying one captured graph of forward,
backward and optimizer step should be faster, most of all with K processes time-slicing one GPU.
Each process trains the preset's model on the same random uint8 batches already on the GPU, set up
by trainables.determinism.apply as a trial is, first eagerly, then from a graph, and reports ms per
step and the weights' digest after the same steps: a graph that changed the arithmetic would show
as another digest. The K processes of a row start each phase together. Usage (on a GPU):

    python bench/cuda_graphs.py --preset cifar10 --mode deterministic --packed 1,4 --steps 300
Record the printed table in bench/RESULTS.md with the card.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from trainables.digests import state_sha256  # noqa: E402  (after the path)

BATCHES = 8  # distinct batches, cycled: the data pipeline is not what is measured
CAPTURE_WARMUP = 3  # steps on a side stream before capture (PyTorch's whole-network capture recipe)


def _setup(preset_name: str, mode: str, channels_last: bool | None):  # noqa: ANN202 (torch objects)
    import torch

    from sweeps.presets import PRESETS
    from trainables import determinism
    from trainables.models import create_model

    trial, sgd = PRESETS[preset_name]["trial"], PRESETS[preset_name]["optimizers"]["sgd"]
    determinism.apply(mode, 0, trial["conv_tf32"], trial["matmul_tf32"], False)
    device = torch.device("cuda")
    wanted = trial["channels_last"] if channels_last is None else channels_last
    layout = torch.channels_last if wanted else torch.contiguous_format
    model = create_model(trial["model"], 10, 3).to(device, memory_format=layout)
    opt = torch.optim.SGD(model.parameters(), lr=sgd["lr"], momentum=sgd["momentum"], weight_decay=sgd["weight_decay"])
    g = torch.Generator(device="cpu").manual_seed(0)
    shape = (BATCHES, trial["batch_size"], 3, 32, 32)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g).to(device)
    labels = torch.randint(0, 10, shape[:2], generator=g).to(device)
    mean = torch.tensor(trial["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(trial["std"], device=device).view(1, -1, 1, 1)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x = ((x.float() / 255 - mean) / std).contiguous(memory_format=layout)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return torch, model, opt, step, images, labels


def _timed(torch, run, steps: int) -> float:  # noqa: ANN001
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        run(i)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1e3


def child(preset_name: str, mode: str, channels_last: bool | None, steps: int, together, out) -> None:  # noqa: ANN001
    torch, model, opt, step, images, labels = _setup(preset_name, mode, channels_last)

    def eager(i: int) -> None:
        opt.zero_grad(set_to_none=True)
        step(images[i % BATCHES], labels[i % BATCHES])

    together.wait()
    eager_ms = _timed(torch, eager, steps)
    eager_digest = state_sha256(model.state_dict())[:12]
    torch, model, opt, step, images, labels = _setup(preset_name, mode, channels_last)  # the same start again
    static_x, static_y = images[0].clone(), labels[0].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for i in range(CAPTURE_WARMUP):  # real steps, counted: batches 0-2
            static_x.copy_(images[i])
            static_y.copy_(labels[i])
            opt.zero_grad(set_to_none=True)
            step(static_x, static_y)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        step(static_x, static_y)

    def replay(i: int) -> None:
        static_x.copy_(images[(i + CAPTURE_WARMUP) % BATCHES])
        static_y.copy_(labels[(i + CAPTURE_WARMUP) % BATCHES])
        graph.replay()

    together.wait()
    graph_ms = _timed(torch, replay, steps - CAPTURE_WARMUP)
    out.put(
        {
            "eager_ms": eager_ms,
            "graph_ms": graph_ms,
            "eager": eager_digest,
            "graph": state_sha256(model.state_dict())[:12],
        }
    )


def row(preset_name: str, mode: str, channels_last: bool | None, steps: int, packed: int) -> dict:
    ctx = mp.get_context("spawn")
    together, out = ctx.Barrier(packed), ctx.Queue()
    procs = [
        ctx.Process(target=child, args=(preset_name, mode, channels_last, steps, together, out)) for _ in range(packed)
    ]
    for p in procs:
        p.start()
    results = []
    while len(results) < packed:  # why: a child that dies would leave a plain get() waiting for ever
        try:
            results.append(out.get(timeout=1))
        except queue.Empty:
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if failed:
                for p in procs:
                    p.terminate()
                sys.exit(f"a benchmark process failed (exit {failed[0]}); its traceback is above")
    for p in procs:
        p.join()
    eager = sum(r["eager_ms"] for r in results) / packed
    graph = sum(r["graph_ms"] for r in results) / packed
    return {
        "packed": packed,
        "eager_ms": eager,
        "graph_ms": graph,
        "gain": eager / graph,
        "same_weights": all(r["eager"] == r["graph"] for r in results),
        "digests": sorted({r["eager"] for r in results} | {r["graph"] for r in results}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cifar10")
    parser.add_argument("--mode", default="deterministic")
    parser.add_argument("--packed", default="1,4", help="processes sharing the GPU, comma-separated")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--layout",
        choices=("preset", "channels_last", "nchw"),
        default="preset",
        help="memory format (default: the preset's)",
    )
    args = parser.parse_args()
    channels_last = {"preset": None, "channels_last": True, "nchw": False}[args.layout]
    print(f"{args.preset}, {args.mode}, layout {args.layout}, {args.steps} steps a phase")
    print("| processes | eager ms/step | graph ms/step | graph gain | same weights | digests |")
    print("| --- | --- | --- | --- | --- | --- |")
    for packed in (int(k) for k in args.packed.split(",")):
        r = row(args.preset, args.mode, channels_last, args.steps, packed)
        print(
            f"| {packed} | {r['eager_ms']:.2f} | {r['graph_ms']:.2f} | {r['gain']:.2f}x | {r['same_weights']} | "
            f"{' '.join(r['digests'])} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
