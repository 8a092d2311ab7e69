"""coordinates.csv as people write it: spreadsheets, Windows paths, decimal commas."""

import pytest

from geoconvnet.data.coords import read_coordinates_csv
from geoconvnet.utils.errors import DataError


def _write(tmp_path, text: str, encoding: str = "utf-8"):
    path = tmp_path / "coordinates.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_a_spreadsheet_csv_with_a_byte_order_mark_and_windows_paths_reads(tmp_path):
    path = _write(tmp_path, "file,lat,lon\r\ntrain\\Albania\\0.png,41.3,19.8\r\n", "utf-8-sig")
    assert read_coordinates_csv(path) == {"train/Albania/0.png": (41.3, 19.8)}


def test_decimal_commas_are_refused_not_misread(tmp_path):
    path = _write(tmp_path, "file,lat,lon\ntrain/Albania/0.png,41,3,19,8\n")
    with pytest.raises(DataError, match="line 2: 5 columns.*decimal commas"):
        read_coordinates_csv(path)


@pytest.mark.parametrize("row, problem", [("train/Albania/0.png,91,19", "not a latitude"),
                                          ("train/Albania/0.png,x,19", "must be numbers"),
                                          ("Albania/0.png,41,19", "<split>/<Country>/<name>")])
def test_a_bad_row_names_the_file_and_line(tmp_path, row, problem):
    with pytest.raises(DataError, match=f"coordinates.csv line 2: .*{problem}"):
        read_coordinates_csv(_write(tmp_path, f"file,lat,lon\n{row}\n"))


def test_a_binary_file_is_named(tmp_path):
    path = tmp_path / "coordinates.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    with pytest.raises(DataError, match="coordinates.csv: unreadable"):
        read_coordinates_csv(path)
