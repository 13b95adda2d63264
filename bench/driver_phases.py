"""Claim: where a study's seconds go outside its trials, on the driver's
side: its imports, Ray's start, Tune's start up to the first trial's process, and from the last
trial's end to the command's.

Runs sweeps/run.py's main in this process with time marks around Ray's start and Tuner.fit, and
reads each trial's `started_at` from the experiment directory. Usage, any study's arguments:
    python bench/driver_phases.py --dataset digits --epochs 1 --repeats 3 --det-repeats 1 --storage-path /tmp/phases
"""

import atexit
import sys
import time
from pathlib import Path

T0 = time.time()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from packing import trial_spans  # noqa: E402  (bench/, this script's folder)

from analysis import load_experiment  # noqa: E402
from sweeps import launch, run  # noqa: E402


def mark(what: str) -> None:
    print(f"[{time.time() - T0:6.2f} s] {what}", flush=True)


def timed(name: str) -> None:
    function = getattr(launch, name)

    def wrapper(*args, **kwargs):
        mark(f"{name} begins")
        try:
            return function(*args, **kwargs)
        finally:
            mark(f"{name} ends")

    setattr(launch, name, wrapper)


mark("the driver's imports done")
for phase in ("start_ray", "fit"):
    timed(phase)
code = run.main(sys.argv[1:])
mark("the summary printed")
study = run.parse(sys.argv[1:])
trials = load_experiment(study.storage_path / launch.experiment_name(study)).trials
start, end = (clock - T0 for clock in trial_spans(trials))
print(
    f"trials: first process start {start.min():.2f} s, first end {end.min():.2f} s, last end {end.max():.2f} s "
    f"(slot imports {trials['startup_imports_s'].max():.2f} s at most)"
)
atexit.register(lambda: mark("Ray's stop begins (atexit)"))  # why: runs before Ray's own atexit handler
sys.exit(code)
