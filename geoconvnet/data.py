"""Reading the reference layout: classes, splits, the bad-file scan and the Dataset.

Layout: ``ROOT/train/<Class>/<image>`` and ``ROOT/test/<Class>/<image>``. Class index =
position in the case-sensitive sorted folder names (as torchvision's ImageFolder, so
``USA`` precedes ``Uganda``). The validation split is carved from ``train``; ``test`` is
only ever used for the final evaluation.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from sklearn.model_selection import train_test_split

from .errors import DataError
from .progress import add_task, progress_bar

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
# A 1600x900 screenshot has 1.4 MP; anything beyond this is treated as a decompression bomb.
DEFAULT_MAX_PIXELS = 40_000_000

Sample = tuple[str, int]  # (path, class index)


def is_image_file(path: str | Path) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image as RGB, or raise DataError naming the file and the reason."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    raise DataError(f"{path}: {img.width}x{img.height} pixels exceeds the limit of "
                                    f"{max_pixels:,} (possible decompression bomb)")
                from . import cache

                if cache.is_tiled(img):  # a training-cache file: the whole image, not a tile
                    return cache.read_cached(str(path), None)
                return img.convert("RGB")
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{path}: decompression bomb ({exc})") from exc
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except Exception as exc:  # PIL raises many types for broken files
        reason = "empty file (0 bytes)" if _is_empty(path) else f"{type(exc).__name__}: {exc}"
        raise DataError(f"{path}: not a readable image ({reason})") from exc


def _is_empty(path) -> bool:
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def check_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Cheap integrity check; returns the reason a file is unusable, or None if it is fine.

    PNG ``verify()`` checks every chunk's CRC without decompressing (about 2 ms for a
    1600x900 screenshot, against about 20-40 ms for a full decode); other formats are
    decoded, JPEG at reduced scale.
    """
    if _is_empty(path):
        return "empty file (0 bytes)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    return f"{img.width}x{img.height} pixels exceeds {max_pixels:,} (decompression bomb)"
                if img.format == "PNG":
                    img.verify()
                else:
                    img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
                    img.load()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def scan_images(paths: list[str], max_pixels: int = DEFAULT_MAX_PIXELS,
                workers: int | None = None) -> dict[str, str]:
    """Check many files in parallel; returns {path: reason} for the unusable ones."""
    bad: dict[str, str] = {}
    if not paths:
        return bad
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    with progress_bar(transient=True) as bar, ThreadPoolExecutor(workers) as pool:
        task = add_task(bar, "Scanning images", len(paths))
        for path, reason in zip(paths, pool.map(lambda p: check_image(p, max_pixels), paths)):
            if reason is not None:
                bad[path] = reason
            bar.advance(task)
    return bad


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
        folder = split_dir / name
        files = sorted(str(p) for p in folder.rglob("*") if p.is_file() and is_image_file(p))
        if not files:
            empty.append(str(folder))
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
    train, val = train_test_split(samples, test_size=n_val, stratify=labels, random_state=seed)
    return sorted(train), sorted(val)


@dataclass
class DatasetIndex:
    """Everything training needs to know about a dataset folder, with nothing decoded."""

    root: Path
    classes: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample] = field(default_factory=list)
    bad_files: dict[str, str] = field(default_factory=dict)
    source_scale: float = 1.0  # < 1 for a cache of downscaled images
    checksums: dict[str, str] | None = None  # cache file -> SHA-256, checked on every read

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
            counts = Counter(label for _, label in getattr(self, split))
            for index, name in enumerate(self.classes):
                per_class[name][split] = counts.get(index, 0)
        return {"root": str(self.root), "num_classes": len(self.classes),
                "counts": {s: len(getattr(self, s)) for s in ("train", "val", "test")},
                "per_class": per_class, "bad_files_count": len(self.bad_files),
                "bad_files": self.bad_files}


def index_dataset(root: str | Path, val_fraction: float = 0.1, seed: int = 0, scan: bool = True,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> DatasetIndex:
    """Find classes and files, check the layout, scan for bad files and split train/val."""
    root = Path(root)
    train_dir, test_dir = root / "train", root / "test"
    classes = find_classes(train_dir)
    train = list_samples(train_dir, classes)
    test: list[Sample] = []
    if test_dir.exists():
        check_same_classes(train_dir, classes, test_dir, find_classes(test_dir))
        test = list_samples(test_dir, classes)
    from . import cache

    if cache.is_cache(root):
        manifest = cache.load_manifest(root)
        sums = cache.checksums(root)
        bad = {str(Path(manifest["source"]) / k): v for k, v in manifest["bad_files"].items()}
        corrupt = cache.verify(root) if scan else {}
        bad.update(corrupt)
        scale = float(manifest["scale"])
    else:
        sums, scale = None, 1.0
        corrupt = bad = scan_images([p for p, _ in train + test], max_pixels) if scan else {}
    train = [s for s in train if s[0] not in corrupt]
    test = [s for s in test if s[0] not in corrupt]
    train, val = split_train_val(train, val_fraction, seed)
    return DatasetIndex(root, classes, train, val, test, bad, scale, sums)


def samples_for_split(root: str | Path, split: str, classes: list[str]) -> list[Sample]:
    """Samples of the folder ``root/split``, labelled with a checkpoint's class order."""
    split_dir = Path(root) / split
    found = find_classes(split_dir)
    if found != list(classes):
        check_same_classes(Path("the checkpoint"), list(classes), split_dir, found)
    return list_samples(split_dir, list(classes))


def samples_from_split_file(run_dir: Path, root: str | Path, classes: list[str]) -> list[Sample]:
    """The validation samples a run recorded in ``split.json`` (paths relative to ``root``)."""
    split_file = Path(run_dir) / "split.json"
    if not split_file.is_file():
        raise DataError(f"{split_file}: not found; the validation split is only known for runs "
                        "made by `geoconvnet train`")
    paths = json.loads(split_file.read_text())["val"]
    index = {name: i for i, name in enumerate(classes)}
    return [(_locate(Path(root), p), index[Path(p).parts[1]]) for p in paths]


def _locate(root: Path, relative: str) -> str:
    """A recorded path in ``root``, also when one side is a cache (``<name>.jpg``)."""
    path = root / relative
    if not path.exists():
        other = root / (relative[:-4] if relative.endswith(".jpg") else relative + ".jpg")
        path = other if other.exists() else path
    return str(path)


def write_data_report(index: DatasetIndex, run_dir: Path) -> None:
    """data_report.json (full) and data_report.md (a table a person reads)."""
    report = index.report()
    atomic_write_text(run_dir / "data_report.json", json.dumps(report, indent=2))
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
    atomic_write_text(run_dir / "data_report.md", "\n".join(lines) + "\n")


def atomic_write_csv(path: Path, header: list, rows: list) -> None:
    """A CSV file (rows as lists, or dicts keyed by ``header``) written atomically."""
    import csv

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([r[h] for h in header] if isinstance(r, dict) else r for r in rows)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ImageDataset(torch.utils.data.Dataset):
    """(image tensor, label, index) for each sample; a file that fails to decode yields None
    (dropped by :func:`collate_skip_broken`) so one bad file never ends an epoch."""

    def __init__(self, samples: list[Sample], transform, max_pixels: int = DEFAULT_MAX_PIXELS,
                 checksums: dict[str, str] | None = None, seed: int | None = None):
        self.samples, self.transform, self.max_pixels = samples, transform, max_pixels
        self.checksums = checksums  # set for a cache: files are checked and decoded as JPEG
        self.seed = seed  # with a seed, each key's augmentation is reproducible

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int):
        """``key`` = epoch * len + index (see runtime.EpochSampler); a plain index works too."""
        index = key % len(self.samples)
        path, label = self.samples[index]
        try:
            if self.checksums is None:
                image = load_image(path, self.max_pixels)
            else:
                from .cache import open_cached

                image = open_cached(path, self.checksums.get(path))
        except DataError as exc:
            warnings.warn(f"skipping {exc}", stacklevel=1)
            return None
        if self.seed is None:
            return self.transform(image), label, index
        # Seed only the CPU generator the transforms draw from (torch.manual_seed would also
        # queue CUDA seeding, recording a stack trace each time: 100x slower), and restore
        # it so the main process's stream (dropout) is untouched when loading runs there.
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(self.seed * 1_000_003 + key)
        try:
            return self.transform(image), label, index
        finally:
            generator.set_state(state)


def collate_skip_broken(batch):
    """Stack a batch, leaving out samples that failed to load.

    Samples whose tensors differ in size (the ``full`` view of mixed-size images) are kept
    as a list; the model runs them one by one.
    """
    batch = [item for item in batch if item is not None]
    if not batch:
        return None
    images, labels, indices = zip(*batch)
    same_shape = all(img.shape == images[0].shape for img in images)
    stacked = torch.stack(images) if same_shape else list(images)
    return stacked, torch.tensor(labels), torch.tensor(indices)
