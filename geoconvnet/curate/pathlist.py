"""Per-image strings of ``data dedup`` held compactly: at 5 million images a Python list of
path strings costs about 110 bytes an image and a dict or a set of them more (each ``str``
is an object of its own); these hold the bytes in one blob and the digests in one array."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

_CODEC = ("utf-8", "surrogateescape")  # a name that is not UTF-8 comes back as it was


class PathList(Sequence):
    """Paths (str) in one UTF-8 blob with their end offsets: about 8 bytes an image plus
    the characters. When every path starts with ``root`` + the separator only the rest is
    stored, and :attr:`relative` (the paths relative to ``root``) shares the blob."""

    def __init__(self, paths: Iterable[str], root: str | os.PathLike | None = None):
        paths = list(paths)
        prefix = os.path.join(str(root), "") if root is not None else ""
        if not all(p.startswith(prefix) for p in paths):
            prefix = ""
        encoded = [p[len(prefix):].encode(*_CODEC) for p in paths]
        self._blob = b"".join(encoded)
        self._ends = np.cumsum([len(e) for e in encoded], dtype=np.int64)
        self._prefix = prefix
        self._root = root

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        start = int(self._ends[i - 1]) if i else 0
        return self._prefix + self._blob[start:int(self._ends[i])].decode(*_CODEC)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def relative(self) -> Sequence[str]:
        """The paths relative to ``root`` (POSIX separators, as the cache and reports keep
        them)."""
        if self._prefix and os.sep == "/":
            view = PathList.__new__(PathList)
            view._blob, view._ends, view._prefix, view._root = self._blob, self._ends, "", None
            return view
        return PathList(os.path.relpath(p, self._root).replace(os.sep, "/") for p in self)


class Digests(Sequence):
    """SHA-256s as one array of raw 32-byte digests (32 bytes an image, not the 113 of a hex
    string); ``digests[i]`` is the hex string ("" where the file could not be read)."""

    def __init__(self, n: int):
        self.raw = np.zeros(n, "S32")  # b"": no digest (compared as arrays, never split)

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i) -> str:
        return self.digest(i).hex()

    def digest(self, i: int) -> bytes:
        """The 32 bytes (numpy drops trailing zero bytes of an element: put back)."""
        value = self.raw[int(i)]
        return value.ljust(32, b"\0") if value else b""

    def set(self, i: int, digest: bytes | str) -> None:
        self.raw[i] = bytes.fromhex(digest) if isinstance(digest, str) else bytes(digest)
