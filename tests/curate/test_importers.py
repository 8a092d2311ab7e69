import os

import pytest
from PIL import Image

from geoconvnet.cli import main
from geoconvnet.curate.importers import import_folders
from geoconvnet.data.index import index_dataset
from geoconvnet.data.manifest import open_manifest


def _images(folder, n, color=(40, 90, 160)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (64, 36), (color[0], color[1] + i, color[2])).save(folder / f"img{i}.jpg")


def test_folders_with_odd_names_map_to_countries_and_report_the_rest(tmp_path):
    src = tmp_path / "kaggle"
    _images(src / "united_states", 3)
    _images(src / "South-Korea", 2)
    _images(src / "USA", 2)  # a second folder of the same country
    _images(src / "côte d'ivoire", 2)  # a real country, not one of the reference's 85
    _images(src / "Atlantis", 2)
    _images(src / "norway", 1)
    result = import_folders(src, tmp_path / "out", min_per_country=2)
    assert dict(result.imported) == {"USA": 5, "SouthKorea": 2}
    assert result.unmapped == {"Atlantis": 2} and result.outside == {"CoteDIvoire": 2}
    assert result.too_few == {"Norway": 1}
    out = tmp_path / "out"
    names = sorted(p.name for p in (out / "train" / "USA").iterdir())
    assert len(names) == 5 and "img0-1.jpg" in names  # a name taken twice gets a suffix
    assert os.path.samefile(src / "South-Korea" / "img0.jpg", out / "train" / "SouthKorea" /
                            "img0.jpg")  # a hard link, no copy
    again = import_folders(src, out, min_per_country=2)
    assert not again.imported and sum(again.already.values()) == 7
    records = open_manifest(out).records
    assert len(records) == 7 and {r.source for r in records} == {"folders"}
    everything = import_folders(src, tmp_path / "all", all_countries=True)
    assert set(everything.imported) == {"USA", "SouthKorea", "CoteDIvoire", "Norway"}
    other = tmp_path / "other-source"  # the same relative names, other pictures
    _images(other / "USA", 2, (10, 10, 10))
    assert dict(import_folders(other, out).imported) == {"USA": 2}


def test_hyphenated_country_names_map(tmp_path):
    _images(tmp_path / "src" / "Guinea-Bissau", 1)
    _images(tmp_path / "src" / "timor-leste", 1)
    result = import_folders(tmp_path / "src", tmp_path / "out", all_countries=True)
    assert set(result.imported) == {"GuineaBissau", "TimorLeste"} and not result.unmapped


def test_split_folders_are_kept_and_the_root_trains(tmp_path, capsys):
    src = tmp_path / "src"
    for split, n in (("train", 4), ("test", 2)):
        _images(src / split / "Japan", n, (200, 20, 20))
        _images(src / split / "Peru", n, (20, 200, 20))
    assert main(["data", "import", "folders", str(src), "--out", str(tmp_path / "out")]) == 0
    assert "Imported into" in capsys.readouterr().out
    index = index_dataset(tmp_path / "out", val_fraction=0.25)
    assert index.classes == ["Japan", "Peru"] and len(index.test) == 4


def test_hf_import_reads_parquet_shards_in_the_hub_layout(tmp_path):
    import datasets

    names = ["Norway", "Peru"]
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=names)})
    rows = {"image": [], "label": []}
    for label in range(2):
        for i in range(3):
            Image.new("RGB", (32, 18), (label * 120, i * 30, 50)).save(tmp_path / "x.png")
            rows["image"].append({"bytes": (tmp_path / "x.png").read_bytes(), "path": None})
            rows["label"].append(label)
    dataset = datasets.Dataset.from_dict(rows, features=features)
    (tmp_path / "hub" / "data").mkdir(parents=True)
    (tmp_path / "out" / "train" / "Peru").mkdir(parents=True)  # a file of another import
    (tmp_path / "out" / "train" / "Peru" / "3.png").write_bytes(b"keep me")
    for split in ("train", "test"):
        dataset.to_parquet(tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet")
    assert main(["data", "import", "hf", str(tmp_path / "hub"), "--out",
                 str(tmp_path / "out")]) == 0
    for split in ("train", "test"):
        assert sorted(p.name for p in (tmp_path / "out" / split).iterdir()) == names
    assert len(list((tmp_path / "out" / "test" / "Peru").iterdir())) == 3
    assert (tmp_path / "out" / "train" / "Peru" / "3.png").read_bytes() == b"keep me"
    assert len(list((tmp_path / "out" / "train" / "Peru").iterdir())) == 4  # + 3-1.png


OSV5M_HEADER = ("id,latitude,longitude,thumb_original_url,country,sequence,captured_at,lon_bin,"
                "lat_bin,cell,region,sub-region,city,land_cover,road_index,drive_side,climate,"
                "soil,dist_sea,quadtree_10_5000,unique_region,unique_sub-region,unique_city,"
                "unique_country,creator_username,creator_id")


def _osv5m(root):
    """OSV-5M's published layout: <split>.csv and images/<split>/NN.zip of <id>.jpg."""
    import io
    import zipfile

    rows = {"train": [("101", 59.91, 10.75, "NO"), ("102", 60.39, 5.32, "NO"),
                      ("201", 35.68, 139.69, "JP"), ("301", 5.35, -4.0, "CI"),
                      ("401", 0.0, 0.0, "ZZ")],
            "test": [("103", 63.43, 10.39, "NO"), ("202", 34.69, 135.5, "JP")]}
    for split, items in rows.items():
        lines = [OSV5M_HEADER] + [f"{i},{lat},{lon},,{cc},seq,2021-05-04,,,,,,,,,,,,,,,,,"
                                  f"{cc},walker,7" for i, lat, lon, cc in items]
        (root / f"{split}.csv").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(root / "images" / split / "00.zip", "w") as archive:
            for i, *_ in items:
                buffer = io.BytesIO()
                Image.new("RGB", (64, 36), (int(i) % 255, 80, 120)).save(buffer, format="JPEG")
                archive.writestr(f"{split}/{i}.jpg", buffer.getvalue())
    return root


def test_osv5m_keeps_countries_coordinates_and_credits(tmp_path):
    from geoconvnet.curate.importers import import_osv5m

    src = _osv5m(tmp_path / "osv5m")
    result = import_osv5m(src, tmp_path / "out")
    assert dict(result.imported) == {"Norway": 3, "Japan": 2}
    assert result.outside == {"CoteDIvoire": 1} and result.unmapped == {"ZZ": 1}
    records = {r.source_id: r for r in open_manifest(tmp_path / "out").records}
    assert (records["201"].lat, records["201"].lon) == (35.68, 139.69)
    assert records["103"].file == "test/Norway/103.jpg" and records["103"].split == "test"
    assert {(r.author, r.licence, r.captured) for r in records.values()} == \
        {("walker", "CC BY-SA 4.0", "2021-05-04")}
    assert (tmp_path / "out" / "train" / "Japan" / "201.jpg").is_file()
    again = import_osv5m(src, tmp_path / "out")
    assert not again.imported and sum(again.already.values()) == 5
    assert dict(import_osv5m(src, tmp_path / "few", min_per_country=3).imported) == {"Norway": 3}


def test_unknown_and_ambiguous_folders_are_listed_never_guessed(tmp_path, capsys):
    src = tmp_path / "src"
    _images(src / "XX", 3)  # pycountry's fuzzy search made this Malta
    _images(src / "Republic of Korea", 2)  # ... and this North Korea
    _images(src / "Korea", 4)
    _images(src / "Malta", 1)
    result = import_folders(src, tmp_path / "out", all_countries=True)
    assert dict(result.imported) == {"SouthKorea": 2, "Malta": 1}
    assert result.unmapped == {"XX": 3, "Korea": 4}
    assert result.ambiguous == {"Korea": ("SouthKorea", "NorthKorea")}
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == ["Malta",
                                                                              "SouthKorea"]
    assert main(["data", "import", "folders", str(src), "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "could be SouthKorea or NorthKorea" in out and "not a country name or code" in out


def _run_cli(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_an_import_of_nothing_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty" / "Norway").mkdir(parents=True)
    _images(tmp_path / "unknown" / "Atlantis", 2)
    _images(tmp_path / "outside" / "Chad", 2)
    for src, expected in (("empty", "no images to import; expected"),
                          ("unknown", "not one country: 'Atlantis' (2)"),
                          ("outside", "--all-countries keeps them"),
                          ("missing", "folder not found")):
        code, err = _run_cli(["data", "import", "folders", str(tmp_path / src), "--out",
                              str(tmp_path / "out")], capsys)
        assert code == 2 and err.startswith("error: ") and expected in err, err
        assert "\n" not in err
    code, err = _run_cli(["data", "import", "folders", str(tmp_path / "outside"), "--out",
                          str(tmp_path / "out"), "--min-per-country", "3",
                          "--all-countries"], capsys)
    assert code == 2 and "fewer than --min-per-country 3: 'Chad' (2)" in err
    assert not (tmp_path / "out").exists()  # nothing written


def _osv5m_rows(root, rows):
    """OSV-5M's CSVs for {split: [(id, country code)]}."""
    for split, items in rows.items():
        lines = [OSV5M_HEADER] + [f"{i},1.5,2.5,,{cc},seq,2021-05-04,,,,,,,,,,,,,,,,,{cc},w,7"
                                  for i, cc in items]
        root.mkdir(parents=True, exist_ok=True)
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")


def _jpeg(seed):
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (32, 18), (seed % 255, 60, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


OSV5M_ROWS = {"train": [("101", "NO"), ("102", "NO"), ("201", "JP")],
              "test": [("103", "NO"), ("202", "JP")]}
# where each layout puts image <id> of <split>: a file, or (zip, name inside it)
OSV5M_LAYOUTS = {
    "zips as shipped": lambda split, i: (f"images/{split}/00.zip", f"{split}/{i}.jpg"),
    "zips without folders": lambda split, i: (f"images/{split}/0{int(i) % 2}.zip", f"{i}.jpg"),
    "extracted": lambda split, i: f"images/{split}/{i}.jpg",
    "extracted per zip": lambda split, i: f"images/{split}/0{int(i) % 2}/{i}.jpg",
    "extracted as the README does": lambda split, i: f"images/{split}/{split}/{i}.jpg",
    "one folder": lambda split, i: f"images/{i}.jpg",
}


def _osv5m_layout(root, layout, rows=OSV5M_ROWS, skip=()):
    import zipfile

    _osv5m_rows(root, rows)
    for split, items in rows.items():
        for i, _ in items:
            if i in skip:
                continue
            place = OSV5M_LAYOUTS[layout](split, i)
            if isinstance(place, tuple):
                (root / place[0]).parent.mkdir(parents=True, exist_ok=True)
                with zipfile.ZipFile(root / place[0], "a") as archive:
                    archive.writestr(place[1], _jpeg(int(i)))
            else:
                (root / place).parent.mkdir(parents=True, exist_ok=True)
                (root / place).write_bytes(_jpeg(int(i)))
    return root


@pytest.mark.parametrize("layout", OSV5M_LAYOUTS)
def test_osv5m_is_found_in_every_layout_it_ships_or_extracts_to(tmp_path, layout):
    from geoconvnet.curate.importers import import_osv5m

    src = _osv5m_layout(tmp_path / "osv5m", layout)
    out = src / "world"  # inside SRC: its own images are not imported again
    result = import_osv5m(src, out)
    assert dict(result.imported) == {"Norway": 3, "Japan": 2} and not result.missing
    records = {r.source_id: r for r in open_manifest(out).records}
    assert records["103"].file == "test/Norway/103.jpg" and records["201"].split == "train"
    assert (out / "train" / "Japan" / "201.jpg").read_bytes() == _jpeg(201)
    again = import_osv5m(src, out)
    assert not again.imported and sum(again.already.values()) == 5


def test_osv5m_rows_without_images_are_counted_and_listed(tmp_path, capsys):
    rows = {"train": [("101", "NO"), ("102", "NO"), ("103", "NA"), ("104", "NO")],
            "test": [("201", "JP"), ("202", "XX")]}
    src = _osv5m_layout(tmp_path / "osv5m", "extracted", rows, skip={"102", "104", "201"})
    assert main(["data", "import", "osv5m", str(src), "--out", str(tmp_path / "out"),
                 "--all-countries"]) == 0
    out = capsys.readouterr().out
    assert "3 of the 5 rows to import have no image file (train 2, test 1), e.g. ids 102, " \
        "104, 201" in out
    records = {r.source_id: r.country for r in open_manifest(tmp_path / "out").records}
    assert records == {"101": "Norway", "103": "Namibia"}  # NA is Namibia, XX nothing
    assert "XX" in out  # left out, by code


def test_osv5m_stopped_before_its_record_is_not_imported_twice(tmp_path):
    from geoconvnet.curate.importers import import_osv5m

    src = _osv5m_layout(tmp_path / "osv5m", "zips as shipped")
    written = tmp_path / "out" / "train" / "Norway" / "101.jpg"
    written.parent.mkdir(parents=True)
    written.write_bytes(_jpeg(101))  # the image of a run killed before its record
    (tmp_path / "out" / "train" / "Japan").mkdir(parents=True)
    (tmp_path / "out" / "train" / "Japan" / "201.jpg").write_bytes(b"someone else's")
    import_osv5m(src, tmp_path / "out")
    files = {r.source_id: r.file for r in open_manifest(tmp_path / "out").records}
    assert files["101"] == "train/Norway/101.jpg" and files["201"] == "train/Japan/201-1.jpg"
    assert not (written.parent / "101-1.jpg").exists()
    assert (tmp_path / "out" / "train" / "Japan" / "201.jpg").read_bytes() == b"someone else's"


def test_osv5m_imports_of_nothing_are_one_line_errors(tmp_path, capsys):
    nothing = _osv5m_layout(tmp_path / "renamed", "extracted")
    for path in (nothing / "images").rglob("*.jpg"):
        path.rename(path.with_name(f"img_{path.name}"))
    no_column = tmp_path / "no-column"
    no_column.mkdir()
    (no_column / "train.csv").write_text("id,latitude,longitude,region\n101,1,2,Oslo\n")
    outside = _osv5m_layout(tmp_path / "outside", "extracted",
                            {"train": [("101", "TD"), ("102", "ZZ")]})
    cases = ((nothing, "0 of 5 rows of train.csv and test.csv had an image; expected "
                       "images/<split>/NN.zip"),
             (nothing, "found 5 images, none named after an id of the CSV (e.g. 'img_103.jpg')"),
             (no_column, "train.csv: no 'country' or 'unique_country' column (found: id, "
                         "latitude, longitude, region)"),
             (tmp_path / "no-csv", "folder not found"),
             (tmp_path, "no train.csv or test.csv"),
             (outside, "no row of train.csv to import; its countries are not one country: "
                       "'ZZ' (1); not among the reference's 85: 'Chad' (1) (--all-countries "
                       "keeps them)"))
    for src, expected in cases:
        code, err = _run_cli(["data", "import", "osv5m", str(src), "--out",
                              str(tmp_path / "out")], capsys)
        assert code == 2 and err.startswith("error: ") and "\n" not in err, err
        assert expected in err, err
    assert not (tmp_path / "out").exists()
    code, err = _run_cli(["data", "import", "osv5m", str(outside), "--out",
                          str(tmp_path / "out"), "--all-countries", "--min-per-country", "2"],
                         capsys)
    assert code == 2 and "no country has --min-per-country 2 images: 'Chad' (1)" in err


def test_osv5m_positions_that_are_not_on_the_globe_are_left_out(tmp_path):
    from geoconvnet.curate.importers import import_osv5m

    src = _osv5m_layout(tmp_path / "osv5m", "extracted")
    lines = (src / "train.csv").read_text().splitlines()
    lines[1] = lines[1].replace(",1.5,2.5,", ",nan,2.5,", 1)
    lines[2] = lines[2].replace(",1.5,2.5,", ",95.0,2.5,", 1)
    (src / "train.csv").write_text("\n".join(lines) + "\n")
    import_osv5m(src, tmp_path / "out")
    records = {r.source_id: (r.lat, r.lon) for r in open_manifest(tmp_path / "out").records}
    assert records["101"] == records["102"] == (None, None) and records["201"] == (1.5, 2.5)
    assert main(["data", "stats", str(tmp_path / "out"), "--no-page"]) == 0  # still readable


def test_osv5m_bad_bytes_are_one_line_or_counted(tmp_path, capsys):
    import zipfile

    src = _osv5m_layout(tmp_path / "latin", "extracted")
    (src / "train.csv").write_bytes((src / "train.csv").read_bytes().replace(
        b",w,7", "Jos\u00e9".encode("latin-1") + b",7"))
    assert main(["data", "import", "osv5m", str(src), "--out", str(tmp_path / "o1")]) == 2
    assert "not a readable UTF-8 CSV" in capsys.readouterr().err
    src = _osv5m_layout(tmp_path / "crc", "zips as shipped")
    archive = src / "images" / "train" / "00.zip"
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("train/101.jpg")
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF  # inside its bytes
    archive.write_bytes(bytes(data))
    assert main(["data", "import", "osv5m", str(src), "--out", str(tmp_path / "o2")]) == 0
    assert "1 image(s) unreadable in their zip archive (e.g. ids 101)" in \
        " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "o2" / "train" / "Norway" / "101.jpg").exists()


def test_an_import_stopped_mid_batch_or_from_a_moved_source_adds_nothing_twice(tmp_path,
                                                                              monkeypatch):
    src = tmp_path / "src"
    _images(src / "Norway", 4)
    monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(OSError("cross-device")))
    out = tmp_path / "out"
    assert sum(import_folders(src, out).imported.values()) == 4  # copies, not links
    (out / "collect-manifest.jsonl").write_text("")  # killed before the batch was written
    again = import_folders(src, out)
    assert sum(again.imported.values()) == 4 and sorted(os.listdir(out / "train" / "Norway")) \
        == ["img0.jpg", "img1.jpg", "img2.jpg", "img3.jpg"]
    src.rename(tmp_path / "moved")
    moved = import_folders(tmp_path / "moved", out)
    assert not moved.imported and sum(moved.already.values()) == 4
    assert len(open_manifest(out).all_records) == 4
