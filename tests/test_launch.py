"""How the driver starts Ray: a local Ray is told to skip its idle workers, a cluster is joined as it is."""

import logging

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
