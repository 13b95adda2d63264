import numpy as np
import torch

from trainables.batches import StreamSeeds, TrainStream, augment, epoch_plan

S3 = StreamSeeds(3, 3)


def test_augment_matches_a_per_image_reference_crop_and_flip():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(5, 3, 6, 7), dtype=np.uint8))
    offsets = torch.tensor([[0, 0], [4, 4], [2, 1], [1, 3], [4, 0]])
    flips = torch.tensor([False, True, False, True, True])
    out = augment(images, offsets, flips, padding=2)
    for i in range(5):
        padded = np.pad(images[i].numpy(), ((0, 0), (2, 2), (2, 2)))
        y, x = offsets[i].tolist()
        ref = padded[:, y : y + 6, x : x + 7]
        if flips[i]:
            ref = ref[:, :, ::-1]
        assert np.array_equal(out[i].numpy(), ref)
    assert out.dtype == torch.uint8


def test_plan_is_a_function_of_seed_and_epoch_alone():
    a, b = epoch_plan(100, S3, 1, 4, True), epoch_plan(100, S3, 1, 4, True)
    assert all(np.array_equal(x, y) for x, y in zip(a.digest_parts(), b.digest_parts()))
    assert not np.array_equal(a.order, epoch_plan(100, S3, 2, 4, True).order)
    assert not np.array_equal(a.order, epoch_plan(100, StreamSeeds(4, 4), 1, 4, True).order)
    assert sorted(a.order.tolist()) == list(range(100))
    assert a.offsets.min() >= 0 and a.offsets.max() <= 8
    assert 20 < a.flips.sum() < 80


def test_stream_is_the_same_with_and_without_workers():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(37, 1, 5, 5), dtype=np.uint8)
    labels = np.arange(37, dtype=np.int64)
    kw = dict(batch_size=8, seeds=StreamSeeds(5, 5), crop_padding=1, hflip=True, device=torch.device("cpu"))
    inline = list(TrainStream(images, labels, num_workers=0, **kw).epoch(3))
    workers = list(TrainStream(images, labels, num_workers=2, **kw).epoch(3))
    assert len(inline) == len(workers) == 5  # 37 examples in batches of 8, the last one partial
    for (x0, y0, i0), (x1, y1, i1) in zip(inline, workers):
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and torch.equal(i0.cpu(), i1)


def test_drop_last_yields_only_full_batches_with_and_without_workers():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(37, 1, 5, 5), dtype=np.uint8)
    kw = dict(
        batch_size=8,
        seeds=StreamSeeds(5, 5),
        crop_padding=1,
        hflip=True,
        alternate_flip=True,
        drop_last=True,
        device=torch.device("cpu"),
    )
    for workers in (0, 2):
        stream = TrainStream(images, np.arange(37, dtype=np.int64), num_workers=workers, **kw)
        batches = list(stream.epoch(2))
        assert len(stream) == len(batches) == 4 and {len(y) for _, y, _ in batches} == {8}
        skipped = set(range(37)) - set(torch.cat([i for _, _, i in batches]).tolist())
        assert skipped == set(stream.plan(2).order[32:].tolist())  # the plan's last five, not fixed examples
