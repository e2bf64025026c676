"""A minimal PNG writer for 8-bit RGB frames.

Pillow tries every PNG row filter on every row (adaptive filtering), which is
most of its encoding time. Our frames are mostly flat white around a smooth
surface, so filter "none" with zlib level 1 makes files of about the same size
in a third of the time, and they decode about four times faster in the
assembly (measured here: 6 ms against 17 ms to encode, 91 KiB against 87 KiB).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import numpy.typing as npt

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_NONE = 0
_COLOUR_RGB = 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _text_chunk(keyword: str, text: str) -> bytes:
    """A tEXt chunk: Latin-1 keyword (1 to 79 characters), NUL, Latin-1 text."""
    if not 1 <= len(keyword) <= 79 or "\0" in keyword + text:
        raise ValueError(f"not a valid PNG text keyword and text: {keyword!r}, {text!r}")
    return _chunk(b"tEXt", keyword.encode("latin-1") + b"\0" + text.encode("latin-1"))


def encode_rgb(
    pixels: npt.NDArray[np.uint8], level: int = 1, text: dict[str, str] | None = None
) -> bytes:
    """Encode an (height, width, 3) uint8 array as a PNG file's bytes.

    ``pixels`` may be a strided view, such as the RGB part of an RGBA buffer:
    it is copied once, straight into the rows that zlib compresses. ``text``
    becomes tEXt chunks before the image data, where a reader finds them
    without decoding the pixels (Pillow: ``Image.open(path).info``).
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(
            f"expected (height, width, 3) uint8 pixels, not {pixels.shape} {pixels.dtype}"
        )
    height, width, _ = pixels.shape
    rows = np.empty((height, 1 + width * 3), dtype=np.uint8)
    rows[:, 0] = _FILTER_NONE
    # A view of the pixel bytes after each row's filter byte, as (h, w, 3).
    rows[:, 1:].reshape(height, width, 3)[...] = pixels
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_RGB, 0, 0, 0)
    return (
        SIGNATURE
        + _chunk(b"IHDR", header)
        + b"".join(_text_chunk(key, value) for key, value in (text or {}).items())
        + _chunk(b"IDAT", zlib.compress(rows.data, level))
        + _chunk(b"IEND", b"")
    )
