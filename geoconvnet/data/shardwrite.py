"""``data prepare --format shards``: write a sharded cache (:mod:`.shards`), in parallel,
resumably, and incrementally.

The work is cut into shards of up to ``shard_size`` new images (members ordered by a hash
of their path, so each shard mixes every country). A worker process writes a whole shard:
tar bytes to ``.NAME.tar.part``, fsync, read back and checked against their SHA-256, renamed;
then its member list (``NAME.json``). A killed run keeps every finished shard: the plan of a
run is a function of the sources and of the last *finished* prepare only, so a rerun (or
another machine, ``nodes``/``node_rank``) finds the same shard names and skips those done.
The index and the table are written last, once every planned shard exists; a run with
nothing new or changed writes nothing.

Coordinates (:mod:`.coords`: the source's collect manifest or ``coordinates.csv``; a file
cache's entries) live in the index only (``lat.npy``, ``lon.npy``), looked up by source path
whenever the index is written: coordinates that changed while the images did not rewrite
the index alone, converting nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..utils.errors import DataError
from ..utils.io import write_bytes, write_json
from ..utils.progress import add_task, log, progress_bar
from .cache import (DEFAULT_CHROMA, DEFAULT_QUALITY, encode_source, entry_coordinates, is_cache,
                    load_manifest, source_files)
from .cachefile import CHROMA, checked_bytes
from .coords import Coordinates, read_coordinates
from .images import DEFAULT_MAX_PIXELS
from .layout import SPLITS
from .shards import COORDINATE_ARRAYS, FORMAT, SPLIT_CODES, TABLE, key_hash
from .shardstore import sha256_file

DEFAULT_SHARD_SIZE = 1000  # ~120 MB of 800x450 tiled JPEG: within WebDataset's 100 MB-1 GB
MIN_SHARD_SIZE = 64


@dataclass(frozen=True)
class Settings:
    scale: float
    quality: int
    chroma: str
    overlap: int
    max_pixels: int


def _sources(root: Path) -> dict[str, tuple]:
    """{relative path: (split, country, size, mtime_ns)} of every image under train/, test/
    (of a file cache: of the sources it was made from, with its file and SHA-256)."""
    if is_cache(root):
        return {key: (key.split("/")[0], key.split("/")[1], e["size"], e["mtime_ns"],
                      e["file"], e["sha256"])
                for key, e in load_manifest(root)["entries"].items()}
    found = {}
    for key in source_files(root):  # the file cache's listing and layout checks
        stat = os.stat(root / key)
        split, country = Path(key).parts[:2]
        found[key] = (split, country, stat.st_size, stat.st_mtime_ns)
    return found


def _coordinates(root: Path) -> Coordinates:
    """{source path: (lat, lon)} of a dataset folder (or of the file cache's entries)."""
    return entry_coordinates(load_manifest(root)) if is_cache(root) else read_coordinates(root)


def _sidecar(out: Path, name: str) -> dict | None:
    try:
        return json.loads((out / "shards" / f"{name}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None  # not finished (or torn): the shard is (re)written


def _plan(sources: dict, old: dict | None, out: Path, shard_size: int | None):
    """(kept shard names, new shard jobs, generation, whether a kept shard lost members):
    old shards keep their unchanged members; new or changed sources go to new shards."""
    known, kept, shrunk = set(), [], False
    for shard in (old or {}).get("shards", []):
        side = _sidecar(out, shard["name"])
        if side is None:  # its images are written again; the shard itself is swept later
            log(f"[yellow]{out / 'shards' / shard['name']}.json: member list missing or "
                "unreadable; its images are converted again[/]")
            shrunk = True
            continue
        members = side["members"] + side["bad"]
        live = [m["key"] for m in members
                if tuple(sources.get(m["key"], ())[2:4]) == (m["size"], m["mtime_ns"])]
        known.update(live)
        shrunk = shrunk or len(live) < len(members)  # a source deleted or changed
        if live:
            kept.append(shard["name"])
    generation = (old or {}).get("generation", 0) + 1
    jobs = []
    for split in SPLITS:
        new = sorted((k for k, v in sources.items() if v[0] == split and k not in known),
                     key=key_hash)
        size = shard_size or max(MIN_SHARD_SIZE, min(DEFAULT_SHARD_SIZE, -(-len(new) // 16)))
        for i in range(0, len(new), size):
            name = f"{split}-{generation:04d}-{i // size:06d}"
            jobs.append((name, [(k, *sources[k][1:4]) for k in new[i:i + size]]))
    return kept, jobs, generation, shrunk


def _done(out: Path, name: str, members: list, settings: Settings) -> bool:
    """Whether a shard of the plan was written, by these settings, from these very files
    (a resumed run may have been started with other flags, or a source changed since)."""
    side = _sidecar(out, name)
    written = sorted([(m["key"], m["size"], m["mtime_ns"]) for m in
                      (side or {}).get("members", []) + (side or {}).get("bad", [])])
    return (side is not None and side.get("settings") == asdict(settings)
            and (out / "shards" / f"{name}.tar").is_file()
            and written == sorted((k, size, mtime) for k, _, size, mtime in members))


def write_shard(job) -> tuple[str, int, int]:
    """Worker: convert a shard's members, write and check the tar, then its member list.
    Returns (name, images converted, bad)."""
    out, root, name, members, settings, copies = job
    buffer, records, bad = io.BytesIO(), [], []
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i, (key, country, size, mtime_ns) in enumerate(members):
            entry = {"key": key, "country": country, "size": size, "mtime_ns": mtime_ns}
            try:
                if copies:  # converting a file cache: its checked bytes, not re-encoded
                    data = checked_bytes(str(root / copies[key][0]), copies[key][1])
                else:
                    data, _ = encode_source(str(root / key), settings.scale, settings.quality,
                                            settings.chroma, settings.overlap,
                                            settings.max_pixels)
            except DataError as exc:
                bad.append({**entry, "reason": str(exc)})
                continue
            entry["crc32"] = zlib.crc32(data)
            _add(tar, f"s{i:06d}.jpg", data)
            _add(tar, f"s{i:06d}.json", json.dumps({"path": key, "country": country}).encode())
            records.append({**entry, "member": f"s{i:06d}.jpg"})
    blob = buffer.getvalue()
    # Where each image's bytes start in the tar: what the index's random access reads.
    offsets = {m.name: (m.offset_data, m.size) for m in tarfile.open(fileobj=io.BytesIO(blob))}
    for entry in records:
        entry["offset"], entry["length"] = offsets[entry.pop("member")]
    digest = _write_checked(out / "shards" / f"{name}.tar", blob)
    write_json(out / "shards" / f"{name}.json",
               {"name": name, "sha256": digest, "bytes": len(blob), "members": records,
                "bad": bad, "settings": asdict(settings)})
    return name, len(records), len(bad)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0  # same bytes on every run
    tar.addfile(info, io.BytesIO(data))


def _write_checked(path: Path, blob: bytes) -> str:
    """Write (temp, fsync, rename) and read back: the SHA-256 of what is on disk."""
    expected = hashlib.sha256(blob).hexdigest()
    write_bytes(path, blob)
    if sha256_file(path) != expected:
        raise DataError(f"{path}: read back differently from what was written (disk or "
                        "filesystem fault); check the disk and run prepare again")
    return expected


def prepare_shards(root: str | Path, out: str | Path, scale: float, quality: int | None = None,
                   workers: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
                   chroma: str | None = None, max_crop: int = 448,
                   shard_size: int | None = None, nodes: int = 1, node_rank: int = 0) -> dict:
    """Write or update the sharded cache of a dataset folder; returns a summary."""
    root, out = Path(root), Path(out)
    old = _read_old(out)
    if is_cache(root):  # a file cache is converted with its own settings
        made = load_manifest(root)
        scale, quality, chroma = made["scale"], made["quality"], made.get("chroma", "420")
        max_crop = round(made.get("tile_overlap", 0) / scale)
    settings = _settings(old, scale, quality, chroma, max_crop, max_pixels, out)
    if not 0 <= node_rank < nodes:
        raise DataError(f"--node-rank must be in 0..{nodes - 1}, got {node_rank}")
    if (root / TABLE).is_file():
        raise DataError(f"{root} is already a sharded cache; prepare from the dataset folder")
    sources = _sources(root)
    kept, jobs, generation, shrunk = _plan(sources, old, out, shard_size)
    _check_countries(root, sources)  # before a day of encoding, not after
    places = _coordinates(root)  # likewise: a bad coordinates.csv is said now
    todo = [(n, m) for n, m in jobs if not _done(out, n, m, settings)]
    mine = [j for k, j in enumerate(jobs) if k % nodes == node_rank and j in todo]
    copies = ({k: v[4:] for k, v in sources.items()} if is_cache(root) else None)
    converted, bad = _run(out, root, mine, settings, workers, copies)
    summary = {"converted": converted, "bad_new": bad, "shards_written": len(mine),
               "shards_resumed": len(jobs) - len(todo), "generation": generation}
    waiting = [n for n, m in todo if (n, m) not in mine]
    if waiting:
        log(f"{len(waiting)} shard(s) of other nodes not written yet; the index is written "
            "by the run that finds every shard done (run prepare again when all nodes finish)")
        return {**summary, "waiting": len(waiting)}
    if old and not jobs and not shrunk and _same_coordinates(out, old, places):
        return {**summary, **_counts(old), "unchanged": True}
    table = _finish(out, root, sources, kept + [n for n, _ in jobs], generation, settings,
                    places)
    _drop_unused(out, table)
    return {**summary, **_counts(table), "unchanged": False}


def _check_countries(root: Path, sources: dict) -> None:
    train = {v[1] for v in sources.values() if v[0] == "train"}
    unknown = sorted({v[1] for v in sources.values() if v[1] not in train})
    if unknown:
        raise DataError(f"{root / 'test' / unknown[0]}: country {unknown[0]!r} has test images "
                        "but no train folder; add train images or remove the test folder")


def _read_old(out: Path) -> dict | None:
    if not (out / TABLE).is_file():
        if out.is_dir() and any(out.iterdir()) and not (out / "shards").is_dir():
            raise DataError(f"{out} is a folder with other files; give --out a new or empty "
                            "folder (or an existing sharded cache to update)")
        return None
    try:
        table = json.loads((out / TABLE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{out / TABLE}: unreadable ({exc}); prepare into a new --out") from exc
    if table.get("format") != FORMAT:
        raise DataError(f"{out / TABLE}: format {table.get('format')!r}; prepare into a new --out")
    return table


def _settings(old, scale, quality, chroma, max_crop, max_pixels, out) -> Settings:
    quality = (old or {}).get("quality", DEFAULT_QUALITY) if quality is None else quality
    chroma = (old or {}).get("chroma", DEFAULT_CHROMA) if chroma is None else chroma
    if not 0 < scale <= 1 or not 1 <= quality <= 100 or max_crop < 0:
        raise DataError(f"--scale must be in (0, 1], --quality in 1..100 and --max-crop >= 0, "
                        f"got {scale}, {quality}, {max_crop}")
    if chroma not in CHROMA:
        raise DataError(f"--chroma must be one of {', '.join(CHROMA)}, got {chroma!r}")
    settings = Settings(scale, quality, chroma, round(max_crop * scale), max_pixels)
    if old:
        before = (old["scale"], old["quality"], old["chroma"], old["tile_overlap"])
        if before != (scale, quality, chroma, settings.overlap):
            raise DataError(f"{out} was prepared with scale {before[0]}, quality {before[1]}, "
                            f"chroma {before[2]} and tiles overlapping by {before[3]} pixels; "
                            "use another --out for different settings")
    return settings


def _run(out: Path, root: Path, jobs: list, settings: Settings, workers: int | None,
         copies: dict | None):
    if not jobs:
        return 0, 0
    (out / "shards").mkdir(parents=True, exist_ok=True)
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    converted = bad = 0
    with progress_bar() as bar, ProcessPoolExecutor(workers) as pool:
        task = add_task(bar, "Writing shards", sum(len(m) for _, m in jobs))
        work = [(out, root, name, members, settings,
                 copies and {m[0]: copies[m[0]] for m in members}) for name, members in jobs]
        for (name, members), (_, n_ok, n_bad) in zip(jobs, pool.map(write_shard, work)):
            converted, bad = converted + n_ok, bad + n_bad
            bar.advance(task, len(members))
    return converted, bad


def _same_coordinates(out: Path, old: dict, places: Coordinates) -> bool:
    """Whether the index of ``old`` holds ``places``' coordinates for its samples (an index
    without them: whether there are none to add). Its keys are read from its own files;
    anything unreadable or not as the table recorded counts as changed (rewritten)."""
    index = old["index"]
    folder, files = out / index["folder"], index["files"]
    try:
        if any(sha256_file(folder / name) != files[name] for name in ("keys.bin", "key_end.npy")):
            return False
        ends = np.load(folder / "key_end.npy")
        blob = (folder / "keys.bin").read_bytes()
    except (OSError, ValueError, KeyError):
        return False
    if len(ends) != old["counts_all"] or (len(ends) and int(ends[-1]) != len(blob)):
        return False
    starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    lat, lon = _coordinate_arrays((blob[a:b].decode() for a, b in zip(starts.tolist(),
                                                                      ends.tolist())),
                                  len(ends), places)
    if not all(f"{name}.npy" in files for name in COORDINATES):
        return not np.isfinite(lat).any()  # a cache made before coordinates: still none
    try:  # the files themselves too: a damaged one is written again
        return all(hashlib.sha256(_npy(array)).hexdigest() == files[f"{name}.npy"]
                   == sha256_file(folder / f"{name}.npy")
                   for name, array in (("lat", lat), ("lon", lon)))
    except OSError:
        return False


def _coordinate_arrays(keys, n: int, places: Coordinates) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of ``n`` source paths, NaN where ``places`` has none."""
    lat, lon = np.full(n, np.nan, COORDINATES["lat"]), np.full(n, np.nan, COORDINATES["lon"])
    if places:
        for i, key in enumerate(keys):
            place = places.get(key)
            if place is not None:
                lat[i], lon[i] = place
    return lat, lon


def _finish(out: Path, root: Path, sources: dict, names: list[str], generation: int,
            settings: Settings, places: Coordinates) -> dict:
    """Build the index from the shards' member lists (live members only) and the source's
    coordinates, then the table."""
    classes = sorted({v[1] for v in sources.values() if v[0] == "train"})
    label = {c: i for i, c in enumerate(classes)}
    parts, keys, bad_files, shards = [], [], {}, []
    for number, name in enumerate(names):
        side = _sidecar(out, name)
        live = [m for m in side["members"]
                if tuple(sources.get(m["key"], ())[2:4]) == (m["size"], m["mtime_ns"])]
        parts.append(_columns(number, live, label, places))
        keys += [m["key"].encode() for m in live]
        bad_files.update({str(root / m["key"]): m["reason"] for m in side["bad"]
                          if m["key"] in sources})
        shards.append({"name": side["name"], "sha256": side["sha256"], "bytes": side["bytes"],
                       "count": len(live)})
    columns = {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0)
               for k in {**COLUMNS, **COORDINATES}}
    folder = f"index-{generation:04d}"
    files = _write_index(out / folder, columns, keys)
    counts = {s: int((columns["split"] == code).sum()) for s, code in SPLIT_CODES.items()}
    table = {"format": FORMAT, "generation": generation, "scale": settings.scale,
             "quality": settings.quality, "chroma": settings.chroma,
             "tile_overlap": settings.overlap, "source": str(root.resolve()), "classes": classes,
             "counts": counts, "counts_all": len(keys),
             "with_coordinates": int(np.isfinite(columns["lat"]).sum()), "shards": shards,
             "index": {"folder": folder, "files": files}, "bad_files": bad_files,
             "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(out / TABLE, table, indent=0)
    return table


COLUMNS = {"shard": np.uint32, "offset": np.uint64, "length": np.uint32, "crc32": np.uint32,
           "label": np.int16, "split": np.uint8, "keyhash": np.uint64}
# Where each source was taken, NaN where unknown (float64: the source's very numbers).
# Written when given (by prepare, always); an index without them reads as all unknown.
COORDINATES = dict.fromkeys(COORDINATE_ARRAYS, np.float64)  # lat, lon


def _columns(number: int, live: list[dict], label: dict,
             places: Coordinates) -> dict[str, np.ndarray]:
    """The index columns of one shard's live members."""
    values = {"shard": [number] * len(live), "offset": [m["offset"] for m in live],
              "length": [m["length"] for m in live], "crc32": [m["crc32"] for m in live],
              "label": [label[m["country"]] for m in live],
              "split": [SPLIT_CODES[m["key"].split("/", 1)[0]] for m in live],
              "keyhash": [key_hash(m["key"]) for m in live]}
    columns = {k: np.asarray(v, dtype=COLUMNS[k]) for k, v in values.items()}
    columns["lat"], columns["lon"] = _coordinate_arrays((m["key"] for m in live), len(live),
                                                        places)
    return columns


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _write_index(folder: Path, columns: dict, keys: list[bytes]) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.asarray(columns[name], dtype=dtype) for name, dtype in COLUMNS.items()}
    arrays["key_end"] = np.cumsum([len(k) for k in keys], dtype=np.uint64)
    arrays.update({name: np.asarray(columns[name], dtype=dtype)
                   for name, dtype in COORDINATES.items() if name in columns})
    files = {}
    for name, array in arrays.items():
        files[f"{name}.npy"] = _write_checked(folder / f"{name}.npy", _npy(array))
    files["keys.bin"] = _write_checked(folder / "keys.bin", b"".join(keys))
    return files


SHARD_FILE = re.compile(r"(train|test)-\d{4}-\d{6}\.(tar|json)")
INDEX_FOLDER = re.compile(r"index-\d{4}")
INDEX_FILES = {f"{name}.npy" for name in {**COLUMNS, **COORDINATES}} | {"key_end.npy",
                                                                          "keys.bin"}


def _drop_unused(out: Path, table: dict) -> None:
    """Once the new table is in place: remove shards and index files it does not name.
    Only names this command gives its own files are touched (a killed run's shards of an
    older plan, an earlier generation's index, shards with nothing left), never others."""
    keep = {s["name"] for s in table["shards"]}
    for path in (out / "shards").iterdir():
        if SHARD_FILE.fullmatch(path.name) and path.name.rsplit(".", 1)[0] not in keep:
            path.unlink(missing_ok=True)
    for folder in out.iterdir():
        if INDEX_FOLDER.fullmatch(folder.name) and folder.name != table["index"]["folder"]:
            for name in INDEX_FILES:
                (folder / name).unlink(missing_ok=True)
            try:
                folder.rmdir()
            except OSError:
                pass  # something else is in it: left alone


def _counts(table: dict) -> dict:
    return {"images": table["counts_all"], "train": table["counts"]["train"],
            "test": table["counts"]["test"], "shards": len(table["shards"]),
            "bad": len(table["bad_files"]),
            "cache_bytes": sum(s["bytes"] for s in table["shards"]),
            "with_coordinates": table.get("with_coordinates", 0)}  # 0: made before them
