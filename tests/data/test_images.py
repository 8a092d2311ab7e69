import pytest

from geoconvnet.data.images import load_image
from geoconvnet.utils.errors import DataError


def test_load_image_error_names_file(tmp_path):
    bad = tmp_path / "nope.webp"
    bad.write_text("x")
    with pytest.raises(DataError, match="nope.webp: not a readable image"):
        load_image(bad)
    with pytest.raises(DataError, match="missing.png: no such file"):
        load_image(tmp_path / "missing.png")
