import hashlib

from geoconvnet.cli import main
from geoconvnet.data.manifest import open_manifest
from geoconvnet.data.synth import synth


def _contents(root):
    """(split, country) -> sorted content hashes."""
    found = {}
    for path in sorted(root.rglob("*.png")):
        split, country = path.relative_to(root).parts[:2]
        found.setdefault((split, country), []).append(hashlib.sha256(path.read_bytes())
                                                      .hexdigest())
    return {k: sorted(v) for k, v in found.items()}


def test_a_published_root_imports_back_identical(tmp_path, capsys):
    root = synth(tmp_path / "d", classes=2, per_class=3, test_per_class=1, size=(160, 90),
                 workers=1)
    country = sorted(p.name for p in (root / "train").iterdir())[0]
    with open(root / "collect-manifest.jsonl", "w") as f:
        f.write(f'{{"file": "train/{country}/1.png", "split": "train", "country": "{country}", '
                '"source": "mapillary", "source_id": "77", "lat": 41.33, "lon": 19.82, '
                '"author": "ana", "licence": "CC BY-SA 4.0"}\n')
    assert main(["data", "publish", str(root), "--to-folder", str(tmp_path / "hub")]) == 0
    assert "train 6 images, test 2 images" in capsys.readouterr().out
    shards = sorted(p.name for p in (tmp_path / "hub" / "data").iterdir())
    assert shards == ["test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "license: other" in card and "ana (1)" in card and f"| {country} | 3 | 1 |" in card
    assert main(["data", "import", "hf", str(tmp_path / "hub"), "--out",
                 str(tmp_path / "back")]) == 0
    assert _contents(tmp_path / "back") == _contents(root)
    assert sorted(p.name for p in (tmp_path / "back" / "train" / country).iterdir()) == \
        ["0.png", "1.png", "2.png"]
    [record] = open_manifest(tmp_path / "back").records
    assert (record.file, record.lat, record.lon, record.author, record.source_id) == \
        (f"train/{country}/1.png", 41.33, 19.82, "ana", "77")
