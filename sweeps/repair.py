"""A trial is finished or resumable, never neither.

Tune appends each result to the trial's result.json and, every few seconds, saves its own state
(experiment_state-*.json) with each trial's status and last result. A kill or a full disk while
the final line was being written leaves a trial that Tune's state calls finished (it is not run
again) while the file on disk ends in half a line (the study never counts it as finished), so
every re-run stopped with "1 trial unfinished". Before a study resumes, that line is written
again from the newest readable state; where the state holds nothing newer, the half line is
dropped and Tune resumes the trial from its last checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from layout import FINISHED_KEY
from sweeps.storage import tune_state


def _whole_lines(raw: bytes) -> tuple[list[bytes], bool]:
    """The lines that parse, and whether anything after them did not."""
    kept = []
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            if not isinstance(json.loads(line), dict):
                raise ValueError
        except ValueError:
            return kept, True
        kept.append(line)
    return kept, False


def _last_results(experiment: Path) -> dict[str, dict]:
    """Trial folder name -> its last result, from the newest experiment state that parses."""
    for state in sorted(experiment.glob("experiment_state-*.json"), reverse=True):
        trials = tune_state(state)
        if trials is None:
            continue  # a state cut off mid-write: the one before it
        try:
            return {json.loads(t)["relative_logdir"]: json.loads(r).get("last_result") or {} for t, r in trials}
        except (ValueError, KeyError, TypeError):
            continue
    return {}


def repair_results(experiment: Path) -> list[str]:
    """Mend every result.json that ends in a broken line; one line per trial mended."""
    notes: list[str] = []
    states: dict[str, dict] | None = None
    for result_file in sorted(experiment.glob("*/result.json")):
        kept, broken = _whole_lines(result_file.read_bytes())
        if not broken:
            continue
        if states is None:
            states = _last_results(experiment)
        last = states.get(result_file.parent.name, {})
        epoch = json.loads(kept[-1]).get("epoch", 0) if kept else 0
        if FINISHED_KEY in last and last.get("epoch", 0) > epoch:
            kept.append(json.dumps(last).encode())
            notes.append(
                f"{result_file.parent.name}: its last result was cut off; written again from Tune's saved state"
            )
        else:
            notes.append(
                f"{result_file.parent.name}: a cut-off result line dropped; the trial resumes from its last checkpoint"
            )
        tmp = result_file.with_suffix(".json.tmp")
        tmp.write_bytes(b"".join(line + b"\n" for line in kept))
        tmp.replace(result_file)
    return notes
