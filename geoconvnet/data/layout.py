"""The reference layout: ``ROOT/train/<Class>/<image>`` and ``ROOT/test/<Class>/<image>``.

Class index = position in the case-sensitive sorted folder names (as torchvision's
ImageFolder, so ``USA`` precedes ``Uganda``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..utils.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
SPLITS = ("train", "test")  # folders on disk; "val" is carved from train
# What curation writes beside the split folders (read back by `data stats`).
DEDUP_REPORT, FILTER_REPORT = "dedup-report.csv", "filter-report.csv"
SPLIT_MOVES = "split-moves.csv"  # what `data split` moved, for its --undo

Sample = tuple[str, int]  # (path, class index)


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def image_files(folder: str | Path) -> list[str]:
    """Every image file under ``folder`` (recursively), sorted."""
    return sorted(str(p) for p in Path(folder).rglob("*") if p.is_file() and is_image_file(p))


def split_files(root: str | Path) -> dict[str, list[str]]:
    """{split: image files} for the split folders ``root`` has; a DataError when there are
    no images at all (what every curation command reads first), with a hint when ``root``
    is missing or holds a folder per country instead of the layout."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found" if not root.exists() else
                        f"{root}: a file, not a dataset folder")
    files = {s: image_files(root / s) for s in SPLITS if (root / s).is_dir()}
    if not any(files.values()):
        hint = ""
        if not files and any(image_files(p) for p in root.iterdir() if p.is_dir()):
            hint = (f"; it looks like a folder per country: bring it into the layout with "
                    f"`geoconvnet data import folders {root} --out NEW_ROOT`")
        raise DataError(f"{root}: no images under train/ or test/{hint}")
    return files


def created_folders(path: Path, stop: Path) -> list[Path]:
    """The folders between ``stop`` (excluded) and ``path`` (included) that do not exist
    yet, deepest first: what a ``mkdir(parents=True)`` of ``path`` would create."""
    missing = []
    for folder in (path, *path.parents):
        if folder == stop or folder.exists():
            break
        missing.append(folder)
    return missing


def remove_empty(folders) -> list[Path]:
    """Remove those of ``folders`` that are empty, deepest first (folders a command made
    and no longer needs); returns the ones removed."""
    removed = []
    for folder in sorted(set(map(Path, folders)), key=lambda f: len(f.parts), reverse=True):
        try:
            folder.rmdir()  # only ever succeeds on an empty folder
        except OSError:
            continue
        removed.append(folder)
    return removed


def find_classes(split_dir: Path) -> list[str]:
    """Class names = sub-folder names, case-sensitive sorted."""
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: folder not found; expected <root>/train/<Country>/*.png "
                        "(create sample data with `geoconvnet data synth OUT`)")
    classes = sorted(entry.name for entry in os.scandir(split_dir)
                     if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DataError(f"{split_dir}: no class folders; expected {split_dir}/<Country>/<image>")
    return classes


def list_samples(split_dir: Path, classes: list[str]) -> list[Sample]:
    """All image files of a split, sorted; an empty class folder is an error."""
    samples: list[Sample] = []
    empty = []
    for index, name in enumerate(classes):
        files = image_files(split_dir / name)
        if not files:
            empty.append(str(split_dir / name))
        samples.extend((f, index) for f in files)
    if empty:
        raise DataError(f"{len(empty)} class folder(s) contain no images "
                        f"({', '.join(IMAGE_EXTENSIONS)}): {', '.join(empty)}. "
                        "Add images or remove the folders.")
    return samples


def check_same_classes(train_dir: Path, train: list[str], test_dir: Path, test: list[str]) -> None:
    only_train, only_test = sorted(set(train) - set(test)), sorted(set(test) - set(train))
    if only_train or only_test:
        parts = []
        if only_train:
            parts.append(f"only in {train_dir}: {', '.join(only_train)}")
        if only_test:
            parts.append(f"only in {test_dir}: {', '.join(only_test)}")
        raise DataError("train and test have different class folders (" + "; ".join(parts) +
                        "). Both splits need the same countries.")
