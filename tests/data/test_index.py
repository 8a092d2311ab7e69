import json
from pathlib import Path

import pytest
from PIL import Image

from geoconvnet.data.images import scan_images
from geoconvnet.data.index import index_dataset, write_data_report
from geoconvnet.utils.errors import DataError


def _image(path: Path, size=(64, 36), color=(10, 120, 200), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


def _dataset(root: Path, classes, per_class=4, test_per_class=2):
    for split, n in (("train", per_class), ("test", test_per_class)):
        for c in classes:
            for i in range(n):
                _image(root / split / c / f"{i}.png")
    return root


def test_class_order_is_case_sensitive_sorted(tmp_path):
    root = _dataset(tmp_path, ["Uganda", "USA", "Albania"])
    index = index_dataset(root, scan=False)
    assert index.classes == ["Albania", "USA", "Uganda"]


def test_split_is_stratified_deterministic_and_disjoint_from_test(tmp_path):
    root = _dataset(tmp_path, ["A", "B", "C"], per_class=20, test_per_class=5)
    first = index_dataset(root, val_fraction=0.2, seed=3, scan=False)
    again = index_dataset(root, val_fraction=0.2, seed=3, scan=False)
    other = index_dataset(root, val_fraction=0.2, seed=4, scan=False)
    assert first.val == again.val and first.train == again.train
    assert first.val != other.val
    assert [sum(1 for _, l in first.val if l == c) for c in range(3)] == [4, 4, 4]
    train, val, test = ({p for p, _ in s} for s in (first.train, first.val, first.test))
    assert not (train & val) and not (val & test) and not (train & test)
    assert len(train) + len(val) == 60 and len(test) == 15


def test_empty_class_folder_is_named(tmp_path):
    root = _dataset(tmp_path, ["A", "B"])
    (root / "train" / "Empty").mkdir()
    with pytest.raises(DataError, match=r"train/Empty"):
        index_dataset(root, scan=False)


def test_different_class_sets_name_the_folders(tmp_path):
    root = _dataset(tmp_path, ["A", "B"])
    _image(root / "test" / "Extra" / "0.png")
    with pytest.raises(DataError, match="only in .*test: Extra"):
        index_dataset(root, scan=False)


def test_missing_train_folder_explains_layout(tmp_path):
    with pytest.raises(DataError, match="expected <root>/train"):
        index_dataset(tmp_path, scan=False)


def _corrupt_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = _image(folder / "good.png", (200, 100))
    files = {"empty": folder / "empty.png", "truncated": folder / "truncated.png",
             "text": folder / "text.jpg", "bomb": folder / "bomb.png"}
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(good.read_bytes()[:60])
    files["text"].write_text("this is not an image")
    Image.new("L", (3000, 3000)).save(files["bomb"])  # over the 4 MP limit used below
    return files


def test_corrupt_files_are_reported_with_reasons(tmp_path):
    files = _corrupt_files(tmp_path / "x")
    bad = scan_images([str(p) for p in files.values()] + [str(tmp_path / "x" / "good.png")],
                        max_pixels=4_000_000)
    assert set(bad) == {str(p) for p in files.values()}
    assert "0 bytes" in bad[str(files["empty"])]
    assert "decompression bomb" in bad[str(files["bomb"])]


def test_index_skips_corrupt_files_and_reports_them(tmp_path):
    root = _dataset(tmp_path, ["A", "B"], per_class=5)
    files = _corrupt_files(root / "train" / "A")
    index = index_dataset(root, max_pixels=4_000_000)
    paths = {p for p, _ in index.train + index.val}
    assert not paths & {str(p) for p in files.values()}
    assert index.report()["bad_files_count"] == 4
    run = tmp_path / "run"
    run.mkdir()
    write_data_report(index, run)
    report = json.loads((run / "data_report.json").read_text())
    assert report["bad_files_count"] == 4
    assert "truncated.png" in (run / "data_report.md").read_text()


def test_reads_jpg_jpeg_webp(tmp_path):
    for i, (ext, fmt) in enumerate([(".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP")]):
        _image(tmp_path / "train" / "A" / f"{i}{ext}", fmt=fmt)
        _image(tmp_path / "train" / "B" / f"{i}{ext}", fmt=fmt)
    index = index_dataset(tmp_path, val_fraction=0.34)
    assert len(index.train) + len(index.val) == 6 and not index.bad_files
