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
