"""The PNG writer: standard files that decode to exactly the pixels given."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from volcano_gif.task.png import encode_rgb


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 5, 3), (480, 640, 3)])
def test_round_trip_is_pixel_exact(shape: tuple[int, int, int]) -> None:
    pixels = np.random.default_rng(7).integers(0, 256, size=shape, dtype=np.uint8)
    with Image.open(io.BytesIO(encode_rgb(pixels))) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (shape[1], shape[0]))
        image.load()
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_rgb_view_of_an_rgba_buffer_round_trips() -> None:
    # The renderer encodes straight from its canvas: RGB as a strided view of RGBA.
    rgba = np.random.default_rng(8).integers(0, 256, size=(48, 64, 4), dtype=np.uint8)
    view = rgba[:, :, :3]
    assert not view.flags.c_contiguous
    with Image.open(io.BytesIO(encode_rgb(view))) as image:
        np.testing.assert_array_equal(np.asarray(image), view)


def test_pillow_verifies_every_chunk_crc() -> None:
    data = encode_rgb(np.zeros((4, 4, 3), dtype=np.uint8))
    with Image.open(io.BytesIO(data)) as image:
        image.verify()


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float64)],
)
def test_rejects_anything_but_rgb_bytes(pixels: npt.NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match=r"expected \(height, width, 3\) uint8 pixels"):
        encode_rgb(pixels)  # type: ignore[arg-type]  # wrong on purpose


def test_text_chunks_come_before_the_pixels_and_read_back() -> None:
    data = encode_rgb(np.zeros((4, 4, 3), dtype=np.uint8), text={"volcano-gif": "frame 1 of 2"})
    assert data.index(b"tEXt") < data.index(b"IDAT")
    with Image.open(io.BytesIO(data)) as image:
        assert image.info["volcano-gif"] == "frame 1 of 2"  # read without decoding
        image.verify()
