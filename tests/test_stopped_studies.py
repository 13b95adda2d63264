"""Studies stopped for good or by Ctrl-C: the failures listed and the exit code, the resume command
that continues. Apart from test_nothing_lost.py, which needs its reference study, so that the two
files' studies run side by side (pytest -n 2)."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from tests.conftest import REPO
from tests.test_nothing_lost import EPOCHS, command, finals, run
from trainables.tune_entry import FAIL_AT_EPOCH_ENV

pytestmark = pytest.mark.slow


def test_trials_that_fail_for_good_are_listed_and_the_exit_code_says_so(tmp_path):
    proc = run(tmp_path, "failed", "--max-failures", "0", env={FAIL_AT_EPOCH_ENV: "2"})
    assert proc.returncode == 1
    assert "4 trial(s) did not finish" in proc.stdout
    assert proc.stdout.count("(failed): RuntimeError: failure injected at epoch 2") == 4


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    experiment = tmp_path / "interrupted"
    driver = subprocess.Popen(
        command(tmp_path, "interrupted"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(p.read_text().strip() for p in experiment.glob("*/result.json")):
        time.sleep(0.05)
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 130, out + err
    assert "Traceback" not in out + err
    assert "nothing finished is lost. To continue, run the same command again:" in out
    assert "--name interrupted" in out.splitlines()[-1]
    proc = run(tmp_path, "interrupted")  # and it does continue
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(f["epochs_logged"] == list(range(1, EPOCHS + 1)) for f in finals(experiment).values())
