"""MDS image encodings: ``pil``, ``jpeg``, ``png``, ``jpeg_array`` and ``list[pil|jpeg|png]``.

Pillow is optional (``pip install 'sparkshard[images]'``); it is imported only when an
image is actually encoded or decoded. As in MDS, a ``bytes`` value passes through any
image encoding unchanged: it is taken to be the already-encoded file.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from sparkshard.errors import EncodingError, require
from sparkshard.format.encodings import Encoding

__all__ = ["image_encoding"]


def _pil() -> Any:
    return require("PIL.Image", "images", "image encodings (pil, jpeg, png)")


class Pil(Encoding):
    """Raw pixels: ``[width: u32][height: u32][len(mode): u32][mode][pixels]``."""

    name = "pil"

    def encode(self, value: Any) -> bytes:
        image = _expect_image(self.name, value)
        mode = image.mode.encode("utf-8")
        head = np.array([image.size[0], image.size[1], len(mode)], "<u4").tobytes()
        return head + mode + image.tobytes()

    def decode(self, data: bytes | memoryview) -> Any:
        raw = bytes(data)
        width, height, mode_len = np.frombuffer(raw, "<u4", count=3)
        mode = raw[12 : 12 + mode_len].decode("utf-8")
        return _pil().frombytes(mode, (int(width), int(height)), raw[12 + mode_len :])


class Compressed(Encoding):
    """An image file (JPEG or PNG); decodes to a PIL image."""

    def __init__(self, name: str, file_format: str) -> None:
        self.name = name
        self.file_format = file_format

    def encode(self, value: Any) -> bytes:
        image = _expect_image(self.name, value)
        if (
            self.file_format == "JPEG"
            and getattr(image, "format", None) == "JPEG"
            and getattr(image, "filename", "")
        ):
            try:
                with open(image.filename, "rb") as f:  # the original file, not a re-encode
                    return f.read()
            except OSError:
                pass
        out = io.BytesIO()
        image.save(out, format=self.file_format)
        return out.getvalue()

    def decode(self, data: bytes | memoryview) -> Any:
        return _pil().open(io.BytesIO(bytes(data)))


class ImageList(Encoding):
    """``[0: u32][count: u32][sizes: count x u32][encoded images]``."""

    def __init__(self, name: str, item: Encoding) -> None:
        self.name = name
        self.item = item

    def encode(self, value: Any) -> bytes:
        self._expect(value, list, "a list of images")
        parts = [v if isinstance(v, bytes) else self.item.encode(v) for v in value]
        head = np.array([0, len(parts), *map(len, parts)], "<u4").tobytes()
        return head + b"".join(parts)

    def decode(self, data: bytes | memoryview) -> list[Any]:
        raw = bytes(data)
        count = int(np.frombuffer(raw, "<u4", count=1, offset=4)[0])
        sizes = np.frombuffer(raw, "<u4", count=count, offset=8)
        pos = 8 + 4 * count
        items = []
        for size in sizes.tolist():
            items.append(self.item.decode(raw[pos : pos + size]))
            pos += size
        return items


class JpegArray(Encoding):
    """``[count: u32][sizes: count x u32][JPEG files]``; decodes to a list of PIL images."""

    name = "jpeg_array"

    def encode(self, value: Any) -> bytes:
        self._expect(value, (list, tuple), "a list of JPEG files (bytes) or images")
        jpeg = Compressed("jpeg", "JPEG")
        parts = [bytes(v) if isinstance(v, (bytes, bytearray)) else jpeg.encode(v) for v in value]
        return np.array([len(parts), *map(len, parts)], "<u4").tobytes() + b"".join(parts)

    def decode(self, data: bytes | memoryview) -> list[Any]:
        raw = bytes(data)
        if len(raw) < 4:
            raise EncodingError("a jpeg_array value is shorter than its 4-byte count")
        count = int(np.frombuffer(raw, "<u4", count=1)[0])
        sizes = np.frombuffer(raw, "<u4", count=count, offset=4)
        pos = 4 + 4 * count
        images = []
        for size in sizes.tolist():
            images.append(_pil().open(io.BytesIO(raw[pos : pos + size])))
            pos += size
        return images


def _expect_image(name: str, value: Any) -> Any:
    image_module = _pil()
    if not isinstance(value, image_module.Image):
        raise EncodingError(
            f"encoding '{name}' expects a PIL.Image.Image (or pre-encoded bytes), "
            f"got {type(value).__name__}"
        )
    return value


def image_encoding(name: str) -> Encoding | None:
    """The image encoding called ``name``, or None if it is not an image encoding."""
    singles: dict[str, Encoding] = {
        "pil": Pil(),
        "jpeg": Compressed("jpeg", "JPEG"),
        "png": Compressed("png", "PNG"),
    }
    if name in singles:
        return singles[name]
    if name in ("jpeg_array", "jpegarray"):
        return JpegArray()
    inner = name[5:-1] if name.startswith("list[") and name.endswith("]") else None
    if inner in singles:
        return ImageList(name, singles[inner])
    return None
