import io
from types import SimpleNamespace

from sweeps.progress import StudyProgress, format_duration


def trial(i: int, status: str) -> SimpleNamespace:
    config = {"optimizer": "adam", "seed": 0, "mode": "nondeterministic", "repeat": i}
    return SimpleNamespace(trial_id=f"t{i}", status=status, config=config, last_result={"final_metric": 0.5}, path="/x")


def test_status_line_counts_trials_and_estimates_time_left():
    progress = StudyProgress(total_trials=4, epochs_per_trial=10, metric="metric", stream=io.StringIO())
    trials = [trial(0, "TERMINATED"), trial(1, "RUNNING"), trial(2, "PENDING")]  # the 4th not created yet
    for e in range(1, 11):
        progress.on_trial_result(0, trials, trials[0], {"epoch": e, "metric": 0.9})
    for e in range(1, 6):
        progress.on_trial_result(0, trials, trials[1], {"epoch": e, "metric": 0.75})
    line = progress.status_line(trials, elapsed=30.0)
    # 15 epochs in 30 s; 5 + 10 + 10 epochs left -> 50 s
    assert "1/4 finished, 1 running, 2 pending, 0 failed" in line
    assert "left: 50s" in line
    assert "adam_seed0_nondet_r1 ep 5/10 0.750" in line


def test_before_any_trial_finishes_the_estimate_uses_the_running_trials_epochs_not_the_start_up():
    progress = StudyProgress(total_trials=4, epochs_per_trial=10, metric="metric", stream=io.StringIO())
    trials = [trial(0, "RUNNING"), trial(1, "RUNNING")]  # two more not created yet
    progress.on_trial_result(0, trials, trials[0], {"epoch": 1, "metric": 0.5, "epoch_time_s": 20.0})
    progress.on_trial_result(0, trials, trials[1], {"epoch": 1, "metric": 0.5, "epoch_time_s": 40.0})
    # 2 epochs in 120 s of mostly start-up would say 38 epochs / (2 / 120 s) = 38 min; two trials at
    # a median 30 s an epoch run 38 epochs in 9.5 min
    assert "left: 9m30s" in progress.status_line(trials, elapsed=120.0)
    trials[0].status = "TERMINATED"
    for e in range(2, 11):
        progress.on_trial_result(0, trials, trials[0], {"epoch": e, "metric": 0.5, "epoch_time_s": 20.0})
    # a trial has finished here: the rate seen, 11 epochs in 330 s, start-ups included, takes over:
    # 9 + 2 x 10 epochs left at 30 s each
    assert "left: 14m30s" in progress.status_line(trials, elapsed=330.0)


def test_a_file_gets_lines_not_redraws_and_failures_stand_out():
    out = io.StringIO()
    progress = StudyProgress(total_trials=1, epochs_per_trial=1, metric="metric", stream=out)
    progress.on_trial_error(0, [], trial(0, "ERROR"))
    progress.on_step_end(0, [trial(0, "ERROR")])
    text = out.getvalue()
    assert "\r" not in text and "FAILED adam_seed0_nondet_r0" in text.splitlines()[0]
    assert "0/1 finished, 0 running, 0 pending, 1 failed" in text.splitlines()[1]


def test_durations_read_naturally():
    assert [format_duration(s) for s in (5, 65, 3725)] == ["5s", "1m05s", "1h02m"]
