"""``data publish``: a curated root as a Hugging Face dataset, as the reference published
its own: parquet shards (``data/<split>-NNNNN-of-NNNNN.parquet``, the layout ``datasets``
and ``data import hf`` read back), with an image column, a ClassLabel column of the
countries, the file's name and what the manifest knows (position, source, date, author,
licence), and a dataset card with the counts per country, the sources and the licences
(with the authors to credit where a licence asks for it).

The files are written to a local folder first; with ``repo`` they are uploaded with
huggingface_hub (the user's token: ``token``, ``HF_TOKEN`` or ``hf auth login``)."""

from __future__ import annotations

import math
import tempfile
from collections import Counter
from pathlib import Path

from ..data.download import RECORD_COLUMNS
from ..data.layout import split_files
from ..data.manifest import open_manifest
from ..utils.errors import ConfigError
from ..utils.io import write_text

SHARD_IMAGES = 2_000  # about 1 GB of 1600x900 PNG screenshots per shard


def publish(root: str | Path, folder: str | Path, repo: str | None = None,
            token: str | None = None, private: bool = False) -> dict[str, int]:
    """Write ``root`` as parquet shards and a card into ``folder`` (and upload it to the
    Hub dataset ``repo``); returns the images per split."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("publishing needs the Hugging Face `datasets` package: pip install "
                          "'geoconvnet[hf]'") from None
    root, folder = Path(root), Path(folder)
    files = split_files(root)
    names = sorted({Path(f).parent.name for paths in files.values() for f in paths})
    records = {r.file: r for r in open_manifest(root, repair=False).records}
    features = datasets.Features({
        "image": datasets.Image(), "label": datasets.ClassLabel(names=names),
        "file": datasets.Value("string"),
        **{c: datasets.Value("float64" if c in ("latitude", "longitude", "heading") else
                             "string") for c in RECORD_COLUMNS}})
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for old in (folder / "data").glob("*.parquet"):  # an earlier publish's shards
        old.unlink()
    counts = {}
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
                                "records": records})
                shard.to_parquet(folder / "data" / f"{split}-{i:05d}-of-{shards:05d}.parquet")
            counts[split] = len(paths)
    write_text(folder / "README.md", card(root, files, records))
    if repo:
        _upload(folder, repo, token, private)
    return counts


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


def _upload(folder: Path, repo: str, token: str | None, private: bool) -> None:
    from huggingface_hub import HfApi  # lazy: only an upload needs it

    api = HfApi(token=token)
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset",
                          delete_patterns=["data/*.parquet"])  # no stale shards
    except Exception as exc:  # hub and network errors come in many types
        raise ConfigError(f"could not upload to the Hub dataset {repo} "
                          f"({type(exc).__name__}); check the token (HF_TOKEN or `hf auth "
                          "login`), the repository name and the connection") from None
