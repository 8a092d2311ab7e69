"""Where a sharded training cache lives: a local folder or an object store (``s3://``).

Shards are fetched whole, checked against the SHA-256 the cache's table records, and only
then used; from an object store they land in a local folder first (written to a temporary
name, renamed once checked), so a torn download is never read. Credentials come from the
standard AWS chain (environment, config files, instance roles) and never appear in a
message; ``AWS_ENDPOINT_URL`` points boto3 at another S3-compatible store (MinIO, a test
server on loopback).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from ..utils.errors import DataError
from ..utils.io import write_bytes

S3 = "s3://"
# Where shards and index files of a remote cache are kept; one folder per cache URL.
LOCAL_ENV = "GEOCONVNET_SHARD_CACHE"


def is_remote(location: str | Path) -> bool:
    return str(location).startswith(S3)


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class Store:
    """Reads the files of a cache at ``location``; ``local(name, sha256)`` gives a local
    path whose content has been checked (for a local cache: the file itself)."""

    def __init__(self, location: str | Path):
        self.location = str(location)
        self.remote = is_remote(location)
        self.folder = _mirror(self.location) if self.remote else Path(location)
        self._client, self._pid = None, os.getpid()

    def __getstate__(self):  # a boto3 client does not cross process boundaries
        return {**self.__dict__, "_client": None}

    def read_bytes(self, name: str) -> bytes:
        if not self.remote:
            try:
                return (self.folder / name).read_bytes()
            except OSError as exc:
                raise DataError(f"{self.folder / name}: unreadable ({exc.strerror or exc}); "
                                "run `geoconvnet data prepare` again") from exc
        return self._get(name)

    def local(self, name: str, sha256: str) -> Path:
        """A checked local copy of ``name`` (downloaded once for a remote cache, under a
        name that carries its checksum: a cache replaced at the same URL is fetched anew)."""
        path = self.folder / name
        if not self.remote:
            if not path.is_file():
                raise DataError(f"{path}: shard missing; run `geoconvnet data prepare` again "
                                "to rebuild it")
            return path
        path = path.with_name(f"{path.name}.{sha256[:16]}")
        if path.is_file():
            return path  # only ever renamed into place after its checksum matched
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one download per machine, not one per worker
            if not path.is_file():
                self._download(name, sha256, path)
        return path

    def _download(self, name: str, sha256: str, path: Path) -> None:
        data = self._get(name)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise DataError(f"{self.url(name)}: checksum mismatch after download (corrupted or "
                            "replaced in the store); run `geoconvnet data prepare` and upload "
                            "the cache again")
        write_bytes(path, data)  # temporary name, fsync, rename: never a torn copy

    def url(self, name: str) -> str:
        return f"{self.location.rstrip('/')}/{name}"

    def _get(self, name: str) -> bytes:
        bucket, _, prefix = self.location[len(S3):].partition("/")
        key = f"{prefix.strip('/')}/{name}" if prefix.strip("/") else name
        try:
            return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:  # botocore raises many types; name the object, not the keys
            raise DataError(f"{self.url(name)}: cannot read ({_why(exc)}); check the URL, "
                            "your AWS credentials and AWS_ENDPOINT_URL") from None

    def client(self):
        if self._pid != os.getpid():  # a forked loader worker: never share the parent's socket
            self._client, self._pid = None, os.getpid()
        if self._client is None:
            try:
                import boto3  # lazy: only remote caches need it (pip install geoconvnet[s3])
            except ImportError:
                raise DataError("reading an s3:// cache needs boto3: pip install "
                                "'geoconvnet[s3]'") from None
            self._client = boto3.client("s3")
        return self._client


def _why(exc: Exception) -> str:
    """The error's kind and code, never its full text (it can carry signed URLs)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return f"{type(exc).__name__}{f' {code}' if code else ''}"


def _mirror(location: str) -> Path:
    base = os.environ.get(LOCAL_ENV) or Path.home() / ".cache" / "geoconvnet" / "shards"
    return Path(base) / hashlib.sha256(location.rstrip("/").encode()).hexdigest()[:16]
