"""The augmentation pipelines: each example's steps drawn independently of one another from its
seed; the steps that run on the device drawn per example from its seed, applied as albumentations
applies its own (the reference study's pipeline), and with its strength."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from albumentations.augmentations.pixel.functional import add_noise

from trainables.augment import build, device_steps, example_seed, gaussian_noise, seed_pipeline


def test_noise_is_added_to_uint8_as_albumentations_adds_it():
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 40, 30), dtype=np.uint8))
    images[0, :, :5] = 255  # saturates upwards
    images[1, :, :5] = 0  # and downwards
    seeds = [11, 12, 13]
    out = gaussian_noise(images, seeds, std=4.0)
    for k, seed in enumerate(seeds):
        noise = torch.randn(images.shape[1:], generator=torch.Generator().manual_seed(seed)) * 4.0
        want = add_noise(images[k].permute(1, 2, 0).numpy(), noise.permute(1, 2, 0).double().numpy())
        assert np.array_equal(out[k].permute(1, 2, 0).numpy(), want)
    assert out.dtype == torch.uint8 and not torch.equal(out, images)


def test_noise_depends_on_the_seed_alone():
    images = torch.full((2, 3, 64, 64), 128, dtype=torch.uint8)
    a, b = gaussian_noise(images, [5, 5], std=1.275), gaussian_noise(images, [5, 6], std=1.275)
    assert torch.equal(a[0], a[1]) and torch.equal(a[0], b[0]) and not torch.equal(b[0], b[1])
    assert not torch.equal(a[0, 0], a[0, 1])  # each channel draws its own


def test_cbis_noise_has_the_reference_strength():
    """0.005 of the pixel range: std 1.275 grey levels; truncated toward zero, |n| < 1 adds nothing."""
    steps = device_steps("cbis")
    assert steps is not None and device_steps("sdnet") is None and device_steps("none") is None
    images = torch.full((1, 3, 256, 256), 128, dtype=torch.uint8)
    delta = steps(images, [1]).float() - 128
    unchanged = float((delta == 0).float().mean())
    assert abs(unchanged - 0.567) < 0.01  # P(|z| < 1 / 1.275)
    reference = np.trunc(np.random.default_rng(0).normal(0, 1.275, 10**6))
    assert abs(float(delta.std()) - reference.std()) < 0.01  # the truncated normal's spread
    assert "GaussNoise" not in repr(build("cbis", (0, 0)))  # drawn once, on the device


def test_device_seeds_are_their_own_and_the_pipeline_seeds_are_unchanged():
    assert example_seed(0, 1, 2) == int(np.random.SeedSequence([0, 1, 2]).generate_state(1)[0])
    assert example_seed(0, 1, 2, part=1) != example_seed(0, 1, 2)


def applied_steps(monkeypatch, pipeline, seeds) -> collections.Counter:
    """How often each combination of the pipeline's steps fired, over one example per seed."""
    fired: list[str] = []
    for step in pipeline.transforms:

        def should_apply(force_apply: bool = False, step=step, decide=step.should_apply) -> bool:
            applies = decide(force_apply)
            if applies:
                fired.append(type(step).__name__)
            return applies

        monkeypatch.setattr(step, "should_apply", should_apply)
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    combinations: collections.Counter = collections.Counter()
    for seed in seeds:
        fired.clear()
        seed_pipeline(pipeline, seed)
        pipeline(image=image)
        combinations[frozenset(fired) - {"Resize"}] += 1
    return combinations


def test_each_step_of_a_pipeline_draws_on_its_own(monkeypatch):
    """sdnet: five steps of p=0.5 and one of 0.2, each drawn independently per example. Seeded as
    Compose seeds its steps (one seed for all), they fired all together or not at all."""
    seeds = [example_seed(0, 1, i) for i in range(2000)]
    combinations = applied_steps(monkeypatch, build("sdnet", (32, 32)), seeds)
    assert len(combinations) >= 60  # of 64; the rarest has p = 0.5**5 * 0.2, 12.5 expected
    both_flips = sum(n for steps, n in combinations.items() if {"HorizontalFlip", "VerticalFlip"} <= steps)
    assert abs(both_flips / len(seeds) - 0.25) < 0.04  # independent halves; 4 standard errors
    assert abs(combinations[frozenset()] / len(seeds) - 0.5**5 * 0.8) < 0.015  # no step at all


@pytest.mark.parametrize("name", ["sdnet", "cbis"])
def test_a_pipeline_depends_on_the_example_seed_alone(name):
    image = np.random.default_rng(1).integers(0, 256, (48, 40, 3), dtype=np.uint8)

    def run(pipeline, seed: int) -> np.ndarray:
        seed_pipeline(pipeline, seed)
        return pipeline(image=image)["image"]

    a, b = build(name, (32, 32)), build(name, (32, 32))
    first = run(a, 7)
    run(b, 8)  # b's generators drew elsewhere first
    assert np.array_equal(run(b, 7), first) and np.array_equal(run(a, 7), first)
    assert any(not np.array_equal(run(a, 100 + s), first) for s in range(20))
