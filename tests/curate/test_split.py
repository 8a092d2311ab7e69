import hashlib
import json

from geoconvnet.cli import main
from geoconvnet.curate import dedup, split
from geoconvnet.data.manifest import NAME as MANIFEST
from geoconvnet.data.manifest import open_manifest
from geoconvnet.data.synth import synth


def _contents(root):
    return sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.png"))


def test_split_keeps_groups_on_one_side_is_stratified_and_undoes(tmp_path, capsys):
    root = synth(tmp_path / "d", classes=2, per_class=16, test_per_class=4, size=(480, 270),
                 workers=1)
    names = sorted(p.name for p in (root / "train").iterdir())
    a, b = (root / "train" / names[0]), (root / "train" / names[1])
    (root / "test" / names[0] / "copy.png").write_bytes((a / "0.png").read_bytes())  # leakage
    records = [{"file": f"train/{names[1]}/0.png", "lat": 10.0, "lon": 20.0},
               {"file": f"test/{names[1]}/0.png", "lat": 10.0001, "lon": 20.0}]  # 11 m apart
    with open(root / MANIFEST, "w") as f:
        for r in records:
            f.write(json.dumps({"split": r["file"].split("/")[0], "country": names[1],
                                "source": "streetview", "source_id": r["file"], **r}) + "\n")
    before = _contents(root)
    leaks = {frozenset(g.files) for g in dedup.find_duplicates(root, workers=1).leakage}
    assert {frozenset({f"train/{names[0]}/0.png", f"test/{names[0]}/copy.png"}),
            frozenset({f"train/{names[1]}/0.png", f"test/{names[1]}/0.png"})} <= leaks
    assert main(["data", "split", str(root), "--test-fraction", "0.2", "--seed", "3"]) == 0
    assert "file(s) moved" in capsys.readouterr().out
    assert _contents(root) == before  # nothing lost, nothing copied
    assert dedup.find_duplicates(root, workers=1).leakage == []
    for folder in (a.name, b.name):
        train = len(list((root / "train" / folder).iterdir()))
        test = len(list((root / "test" / folder).iterdir()))
        assert abs(test / (train + test) - 0.2) <= 0.1, (folder, train, test)
    placed = {r.source_id: r.file for r in open_manifest(root, repair=False).records}
    assert all((root / file).is_file() for file in placed.values())  # the manifest followed
    assert len({f.split("/")[0] for f in placed.values()}) == 1  # same spot, one side
    assert split.undo_split(root) > 0
    assert _contents(root) == before
    assert (root / "test" / names[0] / "copy.png").is_file()
    assert {r.file for r in open_manifest(root, repair=False).records} == \
        {r["file"] for r in records}


def test_split_refuses_what_it_cannot_do_in_one_line_and_creates_nothing(tmp_path, capsys):
    assert main(["data", "split", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: folder not found" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()
    flat = tmp_path / "flat"
    synth(tmp_path / "s", classes=2, per_class=2, test_per_class=1, size=(160, 90), workers=1)
    (tmp_path / "s" / "train").rename(flat)
    assert main(["data", "split", str(flat)]) == 2
    err = capsys.readouterr().err
    assert "looks like a folder per country" in err and "data import folders" in err
    assert not (flat / "train").exists() and not (flat / ".collect.lock").exists()


def test_too_few_images_for_the_folds_is_one_line_and_moves_nothing(tmp_path, capsys):
    root = synth(tmp_path / "d", classes=2, per_class=6, test_per_class=2, size=(160, 90),
                 workers=1)
    small = sorted(p.name for p in (root / "train").iterdir())[1]
    for p in list((root / "train" / small).iterdir())[:5]:
        p.unlink()  # 1 train + 2 test: fewer than the 5 folds of --test-fraction 0.2
    before = _contents(root)
    capsys.readouterr()
    assert main(["data", "split", str(root), "--test-fraction", "0.2"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Warning" not in err
    assert f"{small} (3)" in errors[0] and "5 folds" in errors[0] and "nothing was moved" in err
    assert _contents(root) == before and not (root / split.MOVES).exists()


def test_undo_leaves_no_folder_the_split_made(tmp_path):
    root = synth(tmp_path / "d", classes=2, per_class=10, test_per_class=2, size=(160, 90),
                 workers=1)
    names = sorted(p.name for p in (root / "train").iterdir())
    for p in (root / "test" / names[1]).iterdir():
        p.rename(root / "train" / names[1] / f"t-{p.name}")
    (root / "test" / names[1]).rmdir()  # this country has no test folder
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())
    split.split(root, 0.25, seed=1)
    assert (root / "test" / names[1]).is_dir()
    split.undo_split(root)
    after = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())
    assert after == before
