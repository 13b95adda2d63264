"""Image files as users have them: macOS metadata files, 16- and 32-bit and float pixels, very large
images; and a failed trial's exception line whatever its class is called."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from analysis.load import error_line
from datasets import DataError, get_dataset, image_folder
from tests.conftest import write_images
from trainables.file_stream import read_image


@pytest.fixture
def pets(tmp_path):
    for k, name in enumerate(("cats", "dogs")):
        write_images(tmp_path / "pets" / name, 10, seed=k)
    return tmp_path / "pets"


def test_macos_metadata_and_hidden_files_are_skipped(pets):
    (pets / "cats" / "._0000.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (pets / "dogs" / ".hidden").mkdir()
    (pets / "dogs" / ".hidden" / "x.jpg").write_bytes(b"not an image")
    splits = get_dataset("folder").load(pets, verify_files=True)
    paths = splits.train.paths + splits.val.paths + splits.test.paths
    assert len(paths) == 20 and not any("/." in p for p in paths)


@pytest.mark.parametrize(
    ("array", "mode"), [(np.full((20, 20), 0.5, np.float32), "F"), (np.full((20, 20), 70000, np.int32), "I")]
)
def test_32_bit_and_float_images_are_refused_by_name_before_any_trial(pets, array, mode):
    odd = pets / "cats" / "odd.tif"
    Image.fromarray(array, mode=mode).save(odd)
    with pytest.raises(DataError, match=f"{odd}: its pixels are {mode} .*convert it to 8 bits"):
        get_dataset("folder").prepare(pets)
    with pytest.raises(OSError, match="only 8- and 16-bit images are read"):
        read_image(str(odd), 3)


def test_16_bit_grey_images_keep_their_top_8_bits(pets):
    deep = pets / "cats" / "deep.png"
    Image.fromarray(np.full((20, 20), 0xAB12, np.uint16)).save(deep)
    get_dataset("folder").prepare(pets)
    assert (read_image(str(deep), 3) == 0xAB).all()


def test_the_pixel_limit_is_documented_settable_and_above_pillow_s(pets, monkeypatch):
    big = pets / "cats" / "big.png"
    Image.new("L", (15000, 12000)).save(big)  # 180 M pixels: Pillow's own check calls it a decompression bomb
    get_dataset("folder").prepare(pets)
    assert image_folder.MAX_IMAGE_PIXELS == 2**30
    (next(pets.glob(".split-*.json"))).unlink()
    monkeypatch.setattr(image_folder, "MAX_IMAGE_PIXELS", 100_000_000)
    with pytest.raises(DataError, match=f"{big}: larger than 100,000,000 pixels; set CUDA_RANDOMNESS_MAX_IMAGE_PIXELS"):
        get_dataset("folder").prepare(pets)


def test_a_failed_trial_shows_its_exception_line_whatever_its_class_is_called(tmp_path):
    error = tmp_path / "error.txt"
    error.write_text(
        "Failure # 1 (occurred at 2026-11-30_14-08-20)\n\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1)\n"
        '  File "x.py", line 1, in train\ntrainables.forked.TrialProcessError: Traceback (most recent call last):\n'
        '  File "file_stream.py", line 25, in read_image\n'
        "cv2.error: OpenCV(4.10.0) error: (-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS in function 'validateInputImageSize'\n"
    )
    assert error_line(error).startswith("cv2.error: OpenCV(4.10.0) error: (-215:Assertion failed)")


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_colour_images_read_as_contiguous_rgb_or_grey_as_before(tmp_path, mode):
    import cv2

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (17, 23, len(mode)), dtype=np.uint8)
    png, jpg = tmp_path / "x.png", tmp_path / "x.jpg"
    Image.fromarray(pixels, mode=mode).save(png)
    Image.fromarray(pixels[:, :, :3]).save(jpg, quality=90)
    rgb = read_image(str(png), 3)
    assert rgb.flags.c_contiguous and np.array_equal(rgb, pixels[:, :, :3])  # the alpha channel dropped
    grey = read_image(str(png), 1)
    assert grey.shape == (17, 23, 1) and np.array_equal(
        grey[:, :, 0], cv2.cvtColor(pixels[:, :, :3], cv2.COLOR_RGB2GRAY)
    )
    # a JPEG as the reversed view of OpenCV's BGR read gave it (decoders differ, so not against Pillow)
    assert np.array_equal(read_image(str(jpg), 3), cv2.imread(str(jpg))[:, :, ::-1])
