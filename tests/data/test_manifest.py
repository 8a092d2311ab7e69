from geoconvnet.data.manifest import Record, open_manifest


def test_names_are_never_reused_and_moved_aside_images_do_not_count(tmp_path):
    manifest = open_manifest(tmp_path)
    folder = tmp_path / "train" / "Peru"
    folder.mkdir(parents=True)
    for name in ("streetview-00000.jpg", "streetview-00001-train.jpg"):  # the 2nd: a split's
        (folder / name).write_bytes(b"x")
        manifest.append(Record(f"train/Peru/{name}", "train", "Peru", "streetview", name))
    manifest.append(Record("train/Peru/streetview-00007.jpg", "train", "Peru", "streetview",
                           "moved-aside"))  # recorded, but its file was moved out
    again = open_manifest(tmp_path)
    assert again.next_stem("streetview", "train", "Peru") == "streetview-00001"
    assert again.count("train", "Peru") == 2 and len(again.all_records) == 3
    assert "moved-aside" in again.source_ids("streetview")  # not fetched again


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path):
    import json

    manifest = open_manifest(tmp_path)
    for i in range(2):
        manifest.append(Record(f"train/Peru/x{i}.jpg", "train", "Peru", "folders", f"id{i}",
                               lat=-12.0, lon=-77.0))
    path = tmp_path / "collect-manifest.jsonl"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # an editor dropped the final newline
    assert len(open_manifest(tmp_path, repair=False).all_records) == 2
    assert len(open_manifest(tmp_path).all_records) == 2
    assert path.read_bytes().endswith(b"}\n") and len(path.read_text().splitlines()) == 2
    with open(path, "a") as f:
        f.write('{"file": "train/Peru/x2.jpg", "spl')  # a killed append: cut off
    assert len(open_manifest(tmp_path).all_records) == 2
    assert [json.loads(line)["source_id"] for line in path.read_text().splitlines()] == \
        ["id0", "id1"]


def test_a_record_the_reader_would_refuse_is_never_written(tmp_path):
    import pytest

    from geoconvnet.utils.errors import DataError

    manifest = open_manifest(tmp_path)
    for bad in (Record("train/Peru/a.jpg", "train", "Peru", "osv5m", "1", lat=float("nan"),
                       lon=0.0),
                Record("train/Peru/b.jpg", "train", "Peru", "osv5m", "2", lat=95.0, lon=0.0),
                Record("../b.jpg", "train", "Peru", "osv5m", "3")):
        with pytest.raises(DataError, match="refusing a bad record"):
            manifest.append(bad)
    assert not (tmp_path / "collect-manifest.jsonl").exists()


def test_the_check_writes_nothing_and_says_when_there_is_something_to_repair(tmp_path, capsys):
    from geoconvnet.cli import main

    (tmp_path / "train" / "Peru").mkdir(parents=True)
    (tmp_path / "train" / "Peru" / "streetview-00000.jpg").write_bytes(b"x")
    (tmp_path / "collect-manifest.jsonl").write_text("not json\n")
    assert main(["data", "manifest", str(tmp_path)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "bad lines (to set aside) │ 1" in out and "(to record, no position) │ 1" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["collect-manifest.jsonl", "train"]
    assert main(["data", "manifest", str(tmp_path), "--rebuild"]) == 0
    assert main(["data", "manifest", str(tmp_path)]) == 0


def test_naming_a_big_folder_reads_each_record_a_few_times_and_takes_no_name_on_disk(
        tmp_path):
    import time

    reads = 0

    class Counted(Record):  # counts how often the manifest looks at a record's file
        def __getattribute__(self, name):
            if name == "file":
                nonlocal reads
                reads += 1
            return super().__getattribute__(name)

    folder = tmp_path / "train" / "Peru"
    folder.mkdir(parents=True)
    unknown = {f"streetview-{n:05d}.jpg" for n in (3, 250, 19_999)}  # files of no record
    for name in unknown:
        (folder / name).write_bytes(b"x")
    open_manifest(tmp_path).append(Record("train/Peru/streetview-00007.jpg", "train", "Peru",
                                          "streetview", "moved-aside"))  # its file is gone
    manifest, names = open_manifest(tmp_path), []
    start = time.perf_counter()
    with manifest.batch(100_000):
        for i in range(20_000):
            stem = manifest.next_stem("streetview", "train", "Peru", ".jpg")
            assert manifest.next_stem("streetview", "train", "Peru", ".jpg") == stem
            manifest.append(Counted(f"train/Peru/{stem}.jpg", "train", "Peru", "streetview",
                                    f"id{i}"))
            names.append(f"{stem}.jpg")
    elapsed = time.perf_counter() - start
    assert len(set(names)) == 20_000 and not set(names) & unknown
    assert "streetview-00007.jpg" not in names and names[:3] == [
        "streetview-00000.jpg", "streetview-00001.jpg", "streetview-00002.jpg"]
    assert reads <= 10 * 20_000  # a rescan of the folder per name would be ~2e8
    assert elapsed < 30  # a sanity bound only (about 2 s here)
    assert len((tmp_path / "collect-manifest.jsonl").read_bytes().splitlines()) == 20_001
