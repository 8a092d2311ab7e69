"""``data publish``: a curated root as a Hugging Face dataset, as the reference published
its own: parquet shards (``data/<split>-NNNNN-of-NNNNN.parquet``, the layout ``datasets``
and ``data import hf`` read back), with an image column, a ClassLabel column of the
countries, the file's name and what the manifest knows (position, source, date, author,
licence), and a dataset card with the counts per country, the sources and the licences
(with the authors to credit where a licence asks for it).

The files are written to a local folder first; with ``repo`` they are uploaded with
huggingface_hub (the user's token: ``token``, ``HF_TOKEN`` or ``hf auth login``).

Before any shard is built (hours for tens of GB): with ``repo``, the token, the connection and
the right to write there are checked (the token's owner and role); and every image is decoded
in full, so that a file no one can read is never published: a publish with one refuses and
lists them. Only then is the repository created (or found). Only shards this command wrote
(listed in ``FOLDER/.geoconvnet-publish.json``) are ever replaced in the folder."""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from pathlib import Path

from ..data.download import RECORD_COLUMNS
from ..data.images import load_image
from ..data.layout import SPLITS, split_files
from ..data.manifest import check_root_folder, open_manifest
from ..utils.errors import ConfigError, DataError
from ..utils.io import write_json, write_text
from ..utils.pool import worker_pool
from ..utils.progress import add_task, progress_bar

SHARD_IMAGES = 2_000  # about 1 GB of 1600x900 PNG screenshots per shard
WRITTEN = ".geoconvnet-publish.json"  # the shards this command wrote into a folder


def publish(root: str | Path, folder: str | Path, repo: str | None = None,
            token: str | None = None, private: bool = False, workers: int | None = None,
            endpoint: str | None = None) -> dict[str, int]:
    """Write ``root`` as parquet shards and a card into ``folder`` (and upload it to the
    Hub dataset ``repo``); returns the images per split. ``endpoint``: another Hub than
    huggingface.co (a mirror, or a test server)."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("publishing needs the Hugging Face `datasets` package: pip install "
                          "'geoconvnet[hf]'") from None
    root, folder = Path(root), Path(folder)
    files = split_files(root)
    check_root_folder(folder, "--to-folder")
    api = _check_access(repo, token, endpoint) if repo else None
    old_shards = _our_shards(folder)
    _refuse_undecodable(root, [f for paths in files.values() for f in paths], workers)
    if api is not None:  # only once the data is known to be good: no empty repository left
        _create_repo(api, repo, private)
    names = sorted({Path(f).parent.name for paths in files.values() for f in paths})
    records = open_manifest(root, repair=False).by_file()  # a query per file, not all held
    features = datasets.Features({
        "image": datasets.Image(), "label": datasets.ClassLabel(names=names),
        "file": datasets.Value("string"),
        **{c: datasets.Value("float64" if c in ("latitude", "longitude", "heading") else
                             "string") for c in RECORD_COLUMNS}})
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for old in old_shards:  # an earlier publish's shards, and only those
        old.unlink(missing_ok=True)
    counts, written = {}, []
    # One shard at a time through an Arrow cache on disk: never a split in memory. A fresh
    # cache each time, or datasets would reuse shards built from files changed since.
    with tempfile.TemporaryDirectory(prefix="geoconvnet-publish-") as cache:
        for split, paths in files.items():
            shards = max(1, math.ceil(len(paths) / SHARD_IMAGES))
            for i in range(shards):
                chunk = paths[i * SHARD_IMAGES:(i + 1) * SHARD_IMAGES]
                shard = datasets.Dataset.from_generator(
                    _rows, features=features, cache_dir=cache,
                    # tuples: datasets would take lists for shards to split the work over
                    gen_kwargs={"root": root, "paths": tuple(chunk), "names": tuple(names),
                                "records": _shard_records(root, chunk, records)})
                name = f"{split}-{i:05d}-of-{shards:05d}.parquet"
                written.append(name)
                write_json(folder / WRITTEN, {"shards": written})  # before: never untracked
                shard.to_parquet(folder / "data" / name)
            counts[split] = len(paths)
    write_text(folder / "README.md", card(root, files, records))
    if api is not None:
        _upload(api, folder, repo)
    return counts


def _our_shards(folder: Path) -> list[Path]:
    """The shards an earlier publish wrote into ``folder``; a parquet file there that it did
    not write stops the publish (it would sit among the new shards, or be lost)."""
    listed = set()
    if (folder / WRITTEN).is_file():
        try:
            listed = set(json.loads((folder / WRITTEN).read_text())["shards"])
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{folder / WRITTEN}: unreadable; publish into an empty folder") \
                from None
    present = {p.name for p in (folder / "data").glob("*.parquet")}
    foreign = sorted(present - listed)
    if foreign:
        raise ConfigError(f"{folder / 'data'} holds parquet files that data publish did not "
                          f"write ({foreign[0]}{' ...' if len(foreign) > 1 else ''}); give "
                          "--to-folder an empty or new folder")
    return [folder / "data" / name for name in sorted(present & listed)]


def _decodes(path: str) -> str | None:
    try:
        load_image(path)
    except DataError as exc:
        return str(exc)
    return None


def _refuse_undecodable(root: Path, paths: list[str], workers: int | None) -> None:
    """Decode every image in full (in parallel); a DataError lists those that fail."""
    bad = []
    with progress_bar() as bar, worker_pool(workers, len(paths), (__name__,)) as pool:
        task = add_task(bar, "Checking images", len(paths))
        for path, problem in zip(paths, pool.map(_decodes, paths, chunksize=16)):
            if problem:
                bad.append(Path(path).relative_to(root).as_posix())
            bar.advance(task)
    if bad:
        raise DataError(f"{len(bad)} image(s) in {root} do not decode ({', '.join(bad[:3])}"
                        f"{' ...' if len(bad) > 3 else ''}); nothing was published. Move them "
                        f"aside with `geoconvnet data filter {root} --move-rejects DIR`")


def _check_access(repo: str, token: str | None, endpoint: str | None):
    """The Hub API for ``repo`` once the token, the connection and the right to write
    there are known to be good: checked before any shard is built."""
    from huggingface_hub import HfApi  # lazy: only an upload needs it

    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ConfigError(f"--repo {repo!r}: expected USER/NAME or ORG/NAME")
    api = HfApi(endpoint=endpoint, token=token)
    try:
        me = api.whoami()
    except Exception as exc:  # no token, a refused one, no connection: many types
        raise ConfigError(f"the Hugging Face Hub did not accept the token or could not be "
                          f"reached ({_hub_problem(exc)}); pass --token, set HF_TOKEN or run "
                          "`hf auth login`, and check the connection") from None
    role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
    owners = {me.get("name")} | {org.get("name") for org in me.get("orgs") or []}
    if role == "read" or repo.split("/")[0] not in owners:
        why = "a read-only token" if role == "read" else \
            f"the token is {me.get('name')!r}'s, who may not write to {repo.split('/')[0]!r}"
        raise ConfigError(f"cannot publish to {repo}: {why}; use a token with write access")
    return api


def _create_repo(api, repo: str, private: bool) -> None:
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    except Exception as exc:  # hub and network errors come in many types
        raise ConfigError(f"cannot create or open the Hub dataset {repo} "
                          f"({_hub_problem(exc)}); check the name and your rights there") \
            from None


def _hub_problem(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    status = f"HTTP {response.status_code}" if response is not None else type(exc).__name__
    return status


def _shard_records(root: Path, paths: list[str], records) -> dict:
    """The records of a shard's images, as a dict (datasets pickles its arguments)."""
    relative = (Path(p).relative_to(root).as_posix() for p in paths)
    return {f: records[f] for f in relative if f in records}


def _rows(root: Path, paths: tuple[str, ...], names: tuple[str, ...], records: dict):
    for path in paths:
        yield _row(root, path, names, records)


def _row(root: Path, path: str, names: tuple[str, ...], records: dict) -> dict:
    relative = Path(path).relative_to(root).as_posix()
    record = records.get(relative)
    known = {"source": record.source, "source_id": record.source_id, "latitude": record.lat,
             "longitude": record.lon, "heading": record.heading, "captured": record.captured,
             "author": record.author, "licence": record.licence} if record else {}
    return {"image": {"bytes": Path(path).read_bytes(), "path": Path(path).name},
            "label": names.index(Path(path).parent.name), "file": relative,
            **{c: known.get(c) for c in RECORD_COLUMNS}}


def card(root: Path, files: dict[str, list[str]], records: dict) -> str:
    """The dataset card: YAML header for the Hub, then counts, sources and licences."""
    counts = Counter((Path(f).parent.name, split) for split, paths in files.items()
                     for f in paths)
    relative = [Path(f).relative_to(root).as_posix() for paths in files.values() for f in paths]
    licences = Counter((records[f].licence if f in records else None) or "unknown (no record)"
                       for f in relative)
    hub_licence = "cc-by-sa-4.0" if set(licences) == {"CC BY-SA 4.0"} else "other"
    configs = "\n".join(f"  - split: {s}\n    path: data/{s}-*" for s in files)
    lines = ["---", f"license: {hub_licence}", "task_categories:", "- image-classification",
             "configs:", "- config_name: default", "  data_files:", configs, "---", "",
             f"# {root.name}", "",
             "Street-level images by country in the layout of GeoGuessrConvNet's dataset, "
             "published with `geoconvnet data publish`. Columns: `image`, `label` (country), "
             "`file`, and where known `source`, `source_id`, `latitude`, `longitude`, "
             "`heading`, `captured`, `author`, `licence`. Read it back with "
             "`geoconvnet data import hf USER/NAME --out ROOT`.", "",
             "| country | " + " | ".join(files) + " |", "|---|" + "---:|" * len(files)]
    for country in sorted({c for c, _ in counts}):
        lines.append(f"| {country} | " + " | ".join(str(counts[country, s]) for s in files)
                     + " |")
    sources = Counter(r.source for r in records.values())
    lines += ["", "## Sources and licences", ""]
    lines += [f"- {source}: {n} images" for source, n in sources.most_common()] or \
        ["- no manifest: the sources of these images are not recorded"]
    lines += [f"- licence {licence}: {n} images" for licence, n in licences.most_common()]
    credited = Counter(r.author for r in records.values() if r.author and r.licence)
    if credited:
        lines += ["", "## Authors to credit", "",
                  "Images under a licence that asks for attribution were made by: " +
                  ", ".join(f"{a} ({n})" for a, n in credited.most_common()) + "."]
    return "\n".join(lines) + "\n"


def _upload(api, folder: Path, repo: str) -> None:
    try:
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset",
                          allow_patterns=["README.md", "data/*.parquet"],
                          # stale shards of an earlier publish, and no other file
                          delete_patterns=[f"data/{split}-*-of-*.parquet" for split in SPLITS])
    except Exception as exc:  # hub and network errors come in many types
        raise ConfigError(f"could not upload to the Hub dataset {repo} "
                          f"({_hub_problem(exc)}); run the command again to retry (with "
                          "--to-folder DIR the shards are kept there)") from None
