"""One training-cache file: a screenshot stored as overlapping JPEG tiles.

Training decodes only the part of a file it crops from: each image is stored as up to four
overlapping JPEG tiles (two spans per axis, cut on 16-pixel MCU borders so they decode like
the whole image: only pixels within 2 of a tile edge differ), overlapping by the training
crop, so every crop lies inside one tile. At 800x450 a tile is 512x336 and decodes about 3x
faster than the whole image (0.36 vs 1.06 ms), for about twice the bytes. The tiles are
concatenated in one file whose start is an ordinary JPEG (the top-left tile, which carries
the tile table in a JPEG comment), so any image viewer shows the top-left tile; evaluation
views read the whole image, stitched from its tiles. Every read checks the file's SHA-256
when the caller knows it (the cache manifest), so a corrupted file is named, never used.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from pathlib import Path

from PIL import Image

from ..utils.errors import DataError

TILE_ALIGN = 16  # the JPEG MCU at 4:2:0: tiles cut on MCU borders decode like the whole image
TILE_TABLE = b'{"geoconvnet_tiles"'
# JPEG chroma subsampling: PIL's code for each. "444" keeps colour at full resolution (a
# 2-pixel yellow line keeps its colour: tests/data/test_cache.py) but costs 40% more bytes
# and about 30% more decode time; on the sample data it did not raise accuracy (RESULTS.md,
# cache_quality.py over 4 seeds), so the default stays 4:2:0 (cache.DEFAULT_CHROMA).
CHROMA = {"444": 0, "422": 1, "420": 2}


def checked_bytes(path: str, expected_sha256: str | None) -> bytes:
    """A cache file's bytes, or DataError naming it when missing or corrupted."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cache file missing ({exc}); re-run `geoconvnet data prepare`") from exc
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise DataError(f"{path}: corrupted cache file (checksum mismatch); re-run "
                        "`geoconvnet data prepare` to rebuild it")
    return data


def read_cached(path: str, expected_sha256: str | None) -> Image.Image:
    """Decode a whole cache file (an RGB image) after checking its SHA-256."""
    image = open_cached(path, expected_sha256)
    return image.to_pil() if isinstance(image, TiledImage) else image


def open_cached(path: str, expected_sha256: str | None) -> "Image.Image | TiledImage":
    """A cache file after checking its SHA-256: a decoded RGB image, or for a tiled file a
    :class:`TiledImage` that decodes only the tiles asked for.

    PIL (libjpeg-turbo) decodes 800x450 in about 1 ms, as fast as ``torchvision.io``, whose
    decoders are deprecated since torchvision 0.29. A PIL image lets the training crop
    happen before any conversion to a tensor."""
    return open_cached_bytes(path, checked_bytes(path, expected_sha256))


def open_cached_bytes(name: str, data: bytes) -> "Image.Image | TiledImage":
    """:func:`open_cached` for bytes already checked (a sample of a verified shard);
    ``name`` says where they came from in errors."""
    path = name
    image = _open(path, data)
    if not is_tiled(image):
        return _load(path, image)
    try:
        return TiledImage(path, data, json.loads(image.info["comment"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable tile table ({exc!r}); re-run "
                        "`geoconvnet data prepare` to rebuild it") from exc


def is_tiled(image: Image.Image) -> bool:
    """Whether an opened (not necessarily decoded) image is a tiled cache file."""
    return image.format == "JPEG" and image.info.get("comment", b"").startswith(TILE_TABLE)


def _open(path: str, data: bytes) -> Image.Image:
    """Headers only: nothing is decoded yet."""
    try:
        return Image.open(io.BytesIO(data))
    except OSError as exc:
        raise DataError(f"{path}: undecodable cache file ({exc})") from exc


def _load(path: str, image: Image.Image) -> Image.Image:
    try:
        image.load()
    except OSError as exc:
        raise DataError(f"{path}: undecodable cache file ({exc})") from exc
    return image if image.mode == "RGB" else image.convert("RGB")


class TiledImage:
    """An image stored as overlapping JPEG tiles (see the module docstring)."""

    def __init__(self, path: str, data: bytes, table: dict):
        self.path, self.data = path, data
        self.width, self.height = table["size"]
        self.boxes = [tuple(box) for box in table["geoconvnet_tiles"]]
        # The first tile runs up to the others, which fill the end of the file in order.
        lengths = table["lengths"]
        ends = list(itertools.accumulate(lengths, initial=len(data) - sum(lengths)))
        self.byte_ranges = list(zip([0] + ends[:-1], ends))

    def tile(self, index: int) -> Image.Image:
        start, end = self.byte_ranges[index]
        return _load(self.path, _open(self.path, self.data[start:end]))

    def region(self, top: int, left: int, height: int, width: int) -> Image.Image:
        """The region, decoded from the one tile that holds it (else from the whole image)."""
        for index, (x0, y0, x1, y1) in enumerate(self.boxes):
            if x0 <= left and left + width <= x1 and y0 <= top and top + height <= y1:
                return self.tile(index).crop((left - x0, top - y0, left - x0 + width,
                                              top - y0 + height))
        return self.to_pil().crop((left, top, left + width, top + height))

    def to_pil(self) -> Image.Image:
        whole = Image.new("RGB", (self.width, self.height))
        for index, box in enumerate(self.boxes):
            whole.paste(self.tile(index), box[:2])
        return whole


def tile_spans(length: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` spans covering ``length`` such that any window of at most ``overlap``
    pixels lies inside one of them: two spans cut on MCU borders when that saves decoding,
    else the whole length."""
    start = (length - overlap) // 2 // TILE_ALIGN * TILE_ALIGN
    end = -(-(start + overlap) // TILE_ALIGN) * TILE_ALIGN
    if overlap <= 0 or start <= 0 or end > length - TILE_ALIGN:
        return [(0, length)]
    return [(0, end), (start, length)]


def encode(image: Image.Image, quality: int, chroma: str, overlap: int) -> bytes:
    """One cache file: a plain JPEG, or tiles overlapping by ``overlap`` pixels."""
    boxes = [(x0, y0, x1, y1) for y0, y1 in tile_spans(image.height, overlap)
             for x0, x1 in tile_spans(image.width, overlap)]
    if len(boxes) == 1:
        return _jpeg(image, quality, chroma)
    rest = [_jpeg(image.crop(box), quality, chroma) for box in boxes[1:]]
    table = {"geoconvnet_tiles": boxes, "lengths": [len(part) for part in rest],
             "size": [image.width, image.height]}
    first = _jpeg(image.crop(boxes[0]), quality, chroma, comment=json.dumps(table).encode())
    return first + b"".join(rest)


def _jpeg(image: Image.Image, quality: int, chroma: str, **extra) -> bytes:
    # Huffman tables fitted to each image: the same pixels (only the lossless entropy coding
    # changes) in about 6% fewer bytes, decoded as fast (sample data, q94: 4.3% instead of
    # 4.6% of the PNG bytes). Costs a second pass at encode time, paid once in `prepare`.
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, subsampling=CHROMA[chroma],
               optimize=True, **extra)
    return buffer.getvalue()
