import os

from geoconvnet.curate.moves import move_files, undo


def test_moves_never_overwrite_and_undo_works_from_anywhere(tmp_path, monkeypatch):
    root = tmp_path / "root"
    (root / "train" / "A").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    (root / "train" / "A" / "0.png").write_bytes(b"first")
    move_files(root.relative_to(tmp_path), ["train/A/0.png"], "aside")
    (root / "train" / "A" / "0.png").write_bytes(b"second")  # a new file of the same name
    move_files(root.relative_to(tmp_path), ["train/A/0.png"], "aside")
    assert sorted(os.listdir(tmp_path / "aside" / "train" / "A")) == ["0-1.png", "0.png"]
    (root / "train" / "A" / "0.png").write_bytes(b"third")  # its old place is taken again
    monkeypatch.chdir(root)  # undo from another folder
    restored, problems = undo(tmp_path / "aside")
    assert restored == 0 and len(problems) == 2 and "taken by another file" in problems[0]
    (root / "train" / "A" / "0.png").unlink()
    restored, problems = undo(tmp_path / "aside")  # the record was kept for another try
    assert restored == 1 and len(problems) == 1
    assert (root / "train" / "A" / "0.png").read_bytes() in (b"first", b"second")


def test_a_move_folder_inside_a_split_or_the_root_is_refused(tmp_path):
    import pytest

    from geoconvnet.utils.errors import ConfigError

    root = tmp_path / "root"
    (root / "train" / "A").mkdir(parents=True)
    (root / "train" / "A" / "0.png").write_bytes(b"x")
    for inside in (root / "train" / "Rejects", root / "test" / "moved", root / "train", root):
        with pytest.raises(ConfigError, match="inside the dataset root"):
            move_files(root, ["train/A/0.png"], inside)
    assert (root / "train" / "A" / "0.png").is_file()
    assert sorted(p.name for p in (root / "train").iterdir()) == ["A"]  # no class "Rejects"


def test_undo_removes_the_folders_the_move_created_and_nothing_else(tmp_path):
    root = tmp_path / "root"
    for name in ("train/A/0.png", "test/B/1.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(name.encode())
    move_files(root, ["train/A/0.png", "test/B/1.png"], tmp_path / "new" / "aside")
    assert undo(tmp_path / "new" / "aside") == (2, [])
    assert not (tmp_path / "new").exists()  # the move made it, the undo took it away
    mine = tmp_path / "mine"
    (mine / "keep").mkdir(parents=True)
    (mine / "notes.txt").write_text("the user's")
    move_files(root, ["train/A/0.png"], mine)
    assert undo(mine) == (1, [])
    assert sorted(p.name for p in mine.iterdir()) == ["keep", "moves.csv.undone", "notes.txt"]
    assert (root / "train" / "A" / "0.png").read_bytes() == b"train/A/0.png"


def test_filter_refuses_a_move_folder_inside_a_split_before_any_work(tmp_path, capsys):
    from geoconvnet.cli import main

    root = tmp_path / "root"
    (root / "train" / "A").mkdir(parents=True)
    (root / "train" / "A" / "0.png").write_bytes(b"not an image: a reject")
    assert main(["data", "filter", str(root), "--move-rejects", str(root / "train" /
                                                                     "Rejects")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inside the dataset root" in err
    assert not (root / "filter-report.csv").exists()  # refused before the checks ran
    assert sorted(p.name for p in (root / "train").iterdir()) == ["A"]


def test_a_move_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys):
    from geoconvnet.cli import main

    root = tmp_path / "root"
    (root / "train" / "A").mkdir(parents=True)
    (root / "train" / "A" / "0.png").write_bytes(b"not an image: a reject")
    (tmp_path / "taken").write_text("a file")
    assert main(["data", "filter", str(root), "--move-rejects", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err
    assert not (root / "filter-report.csv").exists()


def test_the_filter_report_is_current_after_its_own_moves(tmp_path, capsys):
    from geoconvnet.cli import main
    from geoconvnet.data.synth import synth
    from geoconvnet.report.dataset import dataset_stats

    root = synth(tmp_path / "d", classes=2, per_class=3, test_per_class=1, size=(320, 180),
                 workers=1)
    country = sorted(p.name for p in (root / "train").iterdir())[0]
    (root / "train" / country / "broken.png").write_bytes(b"not an image")
    assert main(["data", "filter", str(root), "--move-rejects", str(tmp_path / "rej"),
                 "--workers", "1"]) == 0
    stats = dataset_stats(root, page=False)
    assert stats.rejected == 1 and not stats.findings["filter"].stale
    (root / "dedup-report.csv").write_text("a,b\n1,2\n")  # not a report of ours
    assert dataset_stats(root, page=False).duplicate_groups is None
