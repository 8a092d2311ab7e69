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
