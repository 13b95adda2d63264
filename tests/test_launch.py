"""How the driver starts Ray: a local Ray is told to skip its idle workers, a cluster is joined as it is."""

import logging
import subprocess

import pytest
import ray

from sweeps import launch
from sweeps.cli import UsageError, parse


@pytest.fixture
def ray_init_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    ray_logger = logging.getLogger("ray")
    handlers, propagate = list(ray_logger.handlers), ray_logger.propagate
    yield calls
    for handler in list(ray_logger.handlers):
        ray_logger.removeHandler(handler)
        handler.close()
    for handler in handlers:
        ray_logger.addHandler(handler)
    ray_logger.propagate = propagate


def test_a_local_ray_starts_without_one_idle_worker_per_cpu(ray_init_calls, tmp_path):
    # the slots need workers with the study's runtime_env, so the idle ones would only cost start-up time and memory
    launch.start_ray(parse(["--dataset", "digits"]), tmp_path / "driver.log")
    (kwargs,) = ray_init_calls
    assert kwargs["address"] == "local" and kwargs["_system_config"] == {"prestart_worker_first_driver": False}
    assert set(kwargs["runtime_env"]["env_vars"]) >= {"CUBLAS_WORKSPACE_CONFIG", "PYTHONPATH"}


def test_a_cluster_is_joined_without_changing_its_settings(ray_init_calls, tmp_path):
    launch.start_ray(parse(["--dataset", "digits", "--address", "ray://head:10001"]), tmp_path / "driver.log")
    (kwargs,) = ray_init_calls
    assert kwargs["address"] == "ray://head:10001" and "_system_config" not in kwargs
    assert kwargs["runtime_env"]["working_dir"] == str(launch.REPO_ROOT)


def test_a_different_grid_under_an_existing_name_is_refused(tmp_path):
    study = parse(["--dataset", "digits", "--name", "x"])
    launch.write_study(tmp_path, list(study.trials))
    assert launch.check_existing(tmp_path, list(study.trials)) is True
    other = parse(["--dataset", "digits", "--name", "x", "--epochs", "3"])
    with pytest.raises(UsageError, match=f"--name: {tmp_path} holds a different study"):
        launch.check_existing(tmp_path, list(other.trials))
    assert launch.check_existing(tmp_path / "new", list(other.trials)) is False


def test_the_same_command_finds_the_same_directory_and_another_grid_another():
    name = launch.experiment_name(parse(["--dataset", "digits"]))
    assert name == launch.experiment_name(parse(["--dataset", "digits"])) and name.startswith("digits-")
    assert name != launch.experiment_name(parse(["--dataset", "digits", "--epochs", "3"]))
    assert launch.experiment_name(parse(["--dataset", "digits", "--name", "mine"])) == "mine"


H200_GIB, A100_GIB = 143771 / 1024, 81920 / 1024  # memory.total as nvidia-smi reports them, in MiB


def test_a_preset_packs_fewer_trials_on_a_gpu_too_small_for_its_packing(capsys):
    # cbis packs two per H200 (97.4 GiB measured together): an 80-GB GPU gets one, with a line saying so
    where = "this machine (where Ray starts) has"
    cbis = parse(["--dataset", "cbis"])
    assert launch.resolve_gpus(cbis, 16, 1, where=where, read_gpu_memory=lambda: H200_GIB) == 0.5
    assert capsys.readouterr().out == ""
    assert launch.resolve_gpus(cbis, 16, 1, where=where, read_gpu_memory=lambda: A100_GIB) == 1
    line = capsys.readouterr().out
    assert (
        line.startswith("GPUs per trial: 1, 1 per GPU: the preset packs 2, a cbis trial took 49 GiB")
        and "80 GiB" in line
    )
    # sdnet packs four (87.5 GiB measured together): three fit an 80-GB GPU with the margin
    assert launch.resolve_gpus(parse(["--dataset", "sdnet"]), 16, 2, read_gpu_memory=lambda: A100_GIB) == 0.3333
    # the flag, an unknown memory and a preset without a measured peak keep their share
    flag = parse(["--dataset", "cbis", "--gpus-per-trial", "0.5"])
    assert launch.resolve_gpus(flag, 16, 1, read_gpu_memory=lambda: A100_GIB) == 0.5
    assert launch.resolve_gpus(cbis, 16, 1, read_gpu_memory=lambda: None) == 0.5

    def unread() -> float:
        raise AssertionError("the GPUs' memory is read only for a packed preset with a measured need")

    assert launch.resolve_gpus(parse(["--dataset", "digits"]), 16, 1, read_gpu_memory=unread) == 0.25
    assert launch.resolve_gpus(flag, 16, 1, read_gpu_memory=unread) == 0.5
    assert launch.resolve_gpus(cbis, 16, 0, read_gpu_memory=unread) == 0.0


def test_gpu_memory_is_the_smallest_visible_gpu_s_and_none_without_nvidia_smi(monkeypatch):
    listing = "0, GPU-aaa, 143771\n1, GPU-bbb, 81920\n2, GPU-ccc, 143771\n"
    calls = []

    def nvidia_smi(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=listing)

    monkeypatch.setattr(subprocess, "run", nvidia_smi)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert launch.local_gpu_memory_gib() == 80.0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert launch.local_gpu_memory_gib() == pytest.approx(140.4, abs=0.1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbb")
    assert launch.local_gpu_memory_gib() == 80.0
    assert calls[0][0] == "nvidia-smi"

    def missing(command, **kwargs):
        raise FileNotFoundError(command[0])

    monkeypatch.setattr(subprocess, "run", missing)
    assert launch.local_gpu_memory_gib() is None
