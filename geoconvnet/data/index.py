"""What training knows about a data root: classes, the train/val/test samples and the files
skipped as unreadable. The validation split is carved from ``train`` (stratified, seeded);
``test`` is only ever used for the final evaluation.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


from ..utils.errors import DataError
from ..utils.io import write_json, write_text
from .images import DEFAULT_MAX_PIXELS
from .layout import Sample, check_same_classes, list_samples
from .root import DataRoot
from .shards import ShardSamples
from .shards import split_train_val as split_shards

SPLIT_FILE = "split.json"


def split_train_val(samples: list[Sample], val_fraction: float, seed: int):
    """Deterministic stratified split of ``train`` into (train, val)."""
    if not 0 < val_fraction < 1:
        raise DataError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    labels = [label for _, label in samples]
    counts = Counter(labels)
    n_val = max(len(counts), round(val_fraction * len(samples)))
    if min(counts.values()) < 2 or n_val > len(samples) - len(counts):
        raise DataError(f"too few training images ({len(samples)} for {len(counts)} classes) to "
                        f"carve a stratified validation split of {val_fraction:.0%}; every class "
                        "needs at least 2 images")
    # lazy: sklearn takes 2.5 s to import, which commands that do not train need not pay
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(samples, test_size=n_val, stratify=labels, random_state=seed)
    return sorted(train), sorted(val)


@dataclass
class DatasetIndex:
    """Everything training needs to know about a data root, with nothing decoded."""

    data: DataRoot
    classes: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample] = field(default_factory=list)
    bad_files: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.data.path

    def split(self, name: str) -> list[Sample]:
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; use train, val or test")
        samples = getattr(self, name)
        if not samples:
            raise DataError(f"{self.root}: split {name!r} is empty")
        return samples

    def report(self) -> dict:
        """Counts per split and class plus the unusable files: the run's data report."""
        per_class = {name: {} for name in self.classes}
        for split in ("train", "val", "test"):
            counts = _label_counts(getattr(self, split))
            for index, name in enumerate(self.classes):
                per_class[name][split] = counts.get(index, 0)
        return {"root": str(self.root), "num_classes": len(self.classes),
                "counts": {s: len(getattr(self, s)) for s in ("train", "val", "test")},
                "per_class": per_class, "bad_files_count": len(self.bad_files),
                "bad_files": self.bad_files}

    def val_paths(self) -> list[str]:
        """The validation files, relative to the root (as ``split.json`` records them)."""
        return [self.data.relative(p) for p, _ in self.val]

    def split_record(self, val_fraction: float, seed: int) -> dict:
        """What ``split.json`` holds."""
        return {"val_fraction": val_fraction, "seed": seed, "val": self.val_paths()}


def index_dataset(root: str | Path | DataRoot, val_fraction: float = 0.1, seed: int = 0,
                  scan: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> DatasetIndex:
    """Find classes and files, check the layout, scan for bad files and split train/val."""
    data = root if isinstance(root, DataRoot) else DataRoot.open(root, max_pixels)
    if data.shards:
        return _index_shards(data, val_fraction, seed)
    classes = data.classes("train")
    train = list_samples(data.path / "train", classes)
    test: list[Sample] = []
    if data.has_split("test"):
        check_same_classes(data.path / "train", classes, data.path / "test", data.classes("test"))
        test = list_samples(data.path / "test", classes)
    unusable = data.scan([p for p, _ in train + test]) if scan else {}
    train = [s for s in train if s[0] not in unusable]
    test = [s for s in test if s[0] not in unusable]
    train, val = split_train_val(train, val_fraction, seed)
    return DatasetIndex(data, classes, train, val, test, {**data.bad_files, **unusable})


def _index_shards(data: DataRoot, val_fraction: float, seed: int) -> DatasetIndex:
    """A sharded cache: nothing is listed or scanned (shards are checked when read); the
    validation split is carved in linear time from key hashes."""
    shards = data.shards
    train, val = split_shards(data.samples("train"), shards.arrays["keyhash"], val_fraction, seed)
    test = data.samples("test") if data.has_split("test") else []
    return DatasetIndex(data, data.classes(), train, val, test, dict(data.bad_files))


def _label_counts(samples) -> Counter:
    if isinstance(samples, ShardSamples):
        return Counter(dict(enumerate(np.bincount(samples.labels).tolist())))
    return Counter(label for _, label in samples)


def recorded_val_samples(run_dir: Path, data: DataRoot, classes: list[str]) -> list[Sample]:
    """The validation samples a run recorded in ``split.json``, found in ``data``."""
    split_file = Path(run_dir) / SPLIT_FILE
    if not split_file.is_file():
        raise DataError(f"{split_file}: not found; the validation split is only known for runs "
                        "made by `geoconvnet train`")
    paths = json.loads(split_file.read_text())["val"]
    index = {name: i for i, name in enumerate(classes)}
    if data.shards:
        ids = data.shards.find(paths)
        return [(i, index[Path(p).parts[1]]) for i, p in zip(ids, paths)]
    return [(data.locate(p), index[Path(p).parts[1]]) for p in paths]


def write_data_report(index: DatasetIndex, run_dir: Path) -> None:
    """data_report.json (full) and data_report.md (a table a person reads)."""
    report = index.report()
    write_json(run_dir / "data_report.json", report)
    lines = [f"# Data report: {index.root}", "",
             f"Classes: {len(index.classes)}; train {report['counts']['train']}, "
             f"val {report['counts']['val']}, test {report['counts']['test']} images.", "",
             f"Unreadable files skipped: **{len(index.bad_files)}**", ""]
    if index.bad_files:
        lines += ["| file | reason |", "|---|---|"]
        lines += [f"| {p} | {r} |" for p, r in sorted(index.bad_files.items())]
        lines.append("")
    lines += ["| class | train | val | test |", "|---|---:|---:|---:|"]
    lines += [f"| {c} | {n['train']} | {n['val']} | {n['test']} |"
              for c, n in report["per_class"].items()]
    write_text(run_dir / "data_report.md", "\n".join(lines) + "\n")
