import json

from geoconvnet.cli import main
from geoconvnet.curate.dedup import find_duplicates
from geoconvnet.data.manifest import NAME as MANIFEST
from geoconvnet.data.synth import synth
from geoconvnet.report.dataset import dataset_stats


def test_stats_count_sources_duplicates_and_places(tmp_path, capsys):
    root = synth(tmp_path / "d", classes=2, per_class=3, test_per_class=1, size=(320, 180),
                 workers=1)
    country = sorted(p.name for p in (root / "train").iterdir())[0]
    (root / "test" / country / "copy.png").write_bytes((root / "train" / country / "0.png")
                                                       .read_bytes())
    with open(root / MANIFEST, "w") as f:
        f.write(json.dumps({"file": f"train/{country}/1.png", "split": "train",
                            "country": country, "source": "mapillary", "source_id": "42",
                            "lat": 41.3, "lon": 19.8, "licence": "CC BY-SA 4.0"}) + "\n")
    before = dataset_stats(root, page=False)
    assert before.duplicate_groups is None and before.images == 9
    find_duplicates(root, workers=1)
    stats = dataset_stats(root)
    assert stats.counts[country] == {"train": 3, "test": 2}
    assert stats.sizes == {"320x180": 9} and stats.formats == {"PNG": 9}
    assert stats.sources == {"mapillary": 1} and stats.places == [(41.3, 19.8)]
    assert stats.duplicate_groups >= 1 and stats.leakage_groups >= 1
    page = stats.page.read_text()
    assert "CC BY-SA 4.0" in page and page.count("data:image/png;base64,") == 2
    (root / "train" / country / "broken.png").write_bytes(b"not an image")
    assert dataset_stats(root, page=False).sizes["unreadable"] == 1  # counted, not a crash
    assert main(["data", "stats", str(root), "--no-page"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the table wraps long tmp paths
    assert "10 images, 2 countries" in out and "leakage" in out


def test_findings_carry_their_time_and_are_never_shown_stale_as_current(tmp_path, capsys):
    from geoconvnet.curate import split

    root = synth(tmp_path / "d", classes=2, per_class=10, test_per_class=2, size=(320, 180),
                 workers=1)
    country = sorted(p.name for p in (root / "train").iterdir())[0]
    (root / "test" / country / "copy.png").write_bytes((root / "train" / country / "0.png")
                                                       .read_bytes())
    find_duplicates(root, workers=1)
    fresh = dataset_stats(root, page=False)
    assert fresh.leakage_groups == 1 and not fresh.findings["dedup"].stale
    split.split(root, 0.25, seed=0)  # removes the leakage, moving files
    after = dataset_stats(root, page=False)
    assert after.leakage_groups == 0 and not after.findings["dedup"].stale
    (root / "train" / country / "0.png").rename(tmp_path / "elsewhere.png")
    stale = dataset_stats(root)
    assert stale.findings["dedup"].stale
    assert main(["data", "stats", str(root), "--no-page"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "STALE" in out and "run `geoconvnet data dedup" in out
    assert "STALE" in stale.page.read_text()
