import os
import stat

import pytest

from geoconvnet.utils.io import atomic_write, read_csv, write_csv, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metrics.csv"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write("half of the new")
            raise RuntimeError("crash in the middle")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["metrics.csv"]


def test_csv_rows_as_lists_or_dicts(tmp_path):
    write_csv(tmp_path / "a.csv", ["x", "y"], [[1, "a"], {"x": 2, "y": "b"}])
    assert read_csv(tmp_path / "a.csv") == [{"x": "1", "y": "a"}, {"x": "2", "y": "b"}]


def test_finished_files_get_the_permissions_a_plain_open_gives(tmp_path):
    write_text(tmp_path / "report.html", "<p>shared</p>")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "report.html").st_mode) == 0o666 & ~mask
