import io
import os
import subprocess
import sys

import datasets
import pytest
from PIL import Image

from geoconvnet.data.download import export_splits
from geoconvnet.data.index import index_dataset


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 18), color).save(buf, format="PNG")
    return buf.getvalue()


def _hub_like_dataset(n_per_class=3):
    """A real `datasets.Dataset` with the reference's features: image + ClassLabel."""
    names = ["Uganda", "USA", "Albania"]
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=names)})
    rows = {"image": [], "label": []}
    for label in range(len(names)):
        for _ in range(n_per_class):
            rows["image"].append({"bytes": _png((label * 80, 10, 10)), "path": None})
            rows["label"].append(label)
    return datasets.Dataset.from_dict(rows, features=features)


def test_export_writes_the_folder_layout_byte_for_byte(tmp_path):
    ds = _hub_like_dataset()
    counts = export_splits({"train": ds, "test": ds}, tmp_path)
    assert counts == {"train": 9, "test": 9}
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["Albania", "USA", "Uganda"]
    assert (tmp_path / "train" / "USA" / "3.png").read_bytes() == _png((80, 10, 10))
    index = index_dataset(tmp_path, val_fraction=0.34)
    assert index.classes == ["Albania", "USA", "Uganda"] and len(index.test) == 9


def test_export_is_incremental(tmp_path):
    ds = _hub_like_dataset()
    export_splits({"train": ds}, tmp_path)
    target = tmp_path / "train" / "Uganda" / "0.png"
    before = target.stat().st_mtime_ns
    export_splits({"train": ds}, tmp_path)
    assert target.stat().st_mtime_ns == before


@pytest.mark.slow
def test_offline_download_fails_with_a_clear_message(tmp_path):
    # A fresh process, so the Hub libraries read the offline switch at import.
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "geoconvnet", "data", "download", "out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "could not download deboradum/GeoGuessr-countries" in proc.stderr
    assert not (tmp_path / "out" / "train").exists()
