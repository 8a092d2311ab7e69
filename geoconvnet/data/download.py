"""Fetch the reference dataset from the Hugging Face Hub into the folder layout.

``deboradum/GeoGuessr-countries`` has the features ``image`` and ``label`` (a ClassLabel
whose names are the country folder names). Images are written byte for byte as stored
(no re-encoding) to ``OUT/<split>/<Country>/<n>.<ext>``; files already there with the
same bytes are skipped, so an interrupted export continues where it stopped, and a
different file of the same name is never overwritten.
"""

from __future__ import annotations

from pathlib import Path

from ..utils.errors import GeoconvnetError
from ..utils.io import write_bytes
from ..utils.progress import add_task, progress_bar
from .layout import IMAGE_EXTENSIONS
from .manifest import Record, lock_root, open_manifest

REFERENCE_REPO = "deboradum/GeoGuessr-countries"
_MAGIC = {b"\x89PNG": ".png", b"\xff\xd8\xff": ".jpg", b"RIFF": ".webp"}


def _extension(data: bytes, source_path: str | None) -> str:
    for magic, ext in _MAGIC.items():
        if data.startswith(magic):
            return ext
    suffix = Path(source_path or "").suffix.lower()
    return suffix if suffix in IMAGE_EXTENSIONS else ".png"


def _write_new(path: Path, data: bytes) -> Path:
    """Write ``data`` at ``path`` unless the same bytes are there already (a re-run); a
    different file of that name is never overwritten: the new one gets a number."""
    candidate, n = path, 1
    while candidate.is_file():
        if candidate.stat().st_size == len(data) and candidate.read_bytes() == data:
            return candidate
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    write_bytes(candidate, data)
    return candidate


# Optional columns (as `data publish` writes them): the file's name, and what the manifest
# knows of the image. Datasets without them import as before.
RECORD_COLUMNS = ("source", "source_id", "latitude", "longitude", "heading", "captured",
                  "author", "licence")


def export_splits(splits, out: str | Path, image_column: str = "image",
                  label_column: str = "label") -> dict[str, int]:
    """Write each ``datasets.Dataset`` of a split mapping to ``out/<split>/<label name>/``
    (named by a ``file`` column where there is one, else by row number). Where the rows
    carry positions or credits (``RECORD_COLUMNS``), they go to the root's manifest.
    Returns the number of images per split."""
    out = Path(out)
    lock = lock_root(out)  # one writer at a time, as collect and the other imports
    try:
        return _export(splits, out, image_column, label_column)
    finally:
        lock.close()


def _export(splits, out: Path, image_column: str, label_column: str) -> dict[str, int]:
    import datasets

    manifest = open_manifest(out)
    recorded = manifest.recorded_files()  # asked of the manifest's index per file
    counts = {}
    for split, ds in splits.items():
        feature = ds.features.get(label_column)
        if not isinstance(feature, datasets.ClassLabel):
            raise GeoconvnetError(f"split {split!r}: column {label_column!r} is not a ClassLabel; "
                                  f"columns: {', '.join(ds.column_names)}")
        ds = ds.cast_column(image_column, datasets.Image(decode=False))
        for name in feature.names:
            (out / split / name).mkdir(parents=True, exist_ok=True)
        # Records synced a batch at a time (not per image): a rerun finds an image written
        # without its record by its bytes (_write_new) and records it then.
        with progress_bar() as bar, manifest.batch():
            task = add_task(bar, f"Writing {split}", len(ds))
            for i, row in enumerate(ds):
                image = row[image_column]
                data = image["bytes"] if image["bytes"] is not None else Path(image["path"]).read_bytes()
                country = feature.names[row[label_column]]
                name = Path(row["file"]).name if row.get("file") else \
                    f"{i}{_extension(data, image.get('path'))}"
                written = _write_new(out / split / country / name, data)
                relative = f"{split}/{country}/{written.name}"
                if relative not in recorded and any(row.get(c) is not None for c in RECORD_COLUMNS):
                    manifest.append(_record(relative, split, country, row))
                    recorded.add(relative)
                bar.advance(task)
        counts[split] = len(ds)
    return counts


def _record(relative: str, split: str, country: str, row: dict) -> Record:
    return Record(relative, split, country, row.get("source") or "hf",
                  str(row.get("source_id") or relative), row.get("latitude"),
                  row.get("longitude"), row.get("heading"), row.get("captured"),
                  row.get("author"), row.get("licence"))


def download(out: str | Path, repo: str = REFERENCE_REPO, token: str | None = None) -> dict[str, int]:
    """Download ``repo`` (a Hub dataset id, or a local folder of the same files) with the
    ``datasets`` library (its cache) and export it to ``out``. ``token``: for a private or
    gated dataset; by default huggingface_hub's own (``HF_TOKEN``, ``hf auth login``)."""
    try:
        import datasets
    except ImportError as exc:
        raise GeoconvnetError("the Hugging Face `datasets` package is needed: "
                              "pip install 'geoconvnet[hf]'") from exc
    try:
        splits = datasets.load_dataset(repo, token=token)
    except Exception as exc:  # hub, network and cache errors come in many types
        raise GeoconvnetError(f"could not download {repo} from the Hugging Face Hub "
                              f"({type(exc).__name__}: {exc}). Check the internet connection "
                              "and disk space, then run the command again.") from exc
    return export_splits(splits, out)
