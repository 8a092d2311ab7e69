from geoconvnet.data import cache
from geoconvnet.data.cachefile import TiledImage
from geoconvnet.data.root import DataRoot
from geoconvnet.data.synth import synth


def test_folder_and_cache_describe_themselves(tmp_path):
    source = synth(tmp_path / "src", classes=2, per_class=3, test_per_class=1, size=(320, 180),
                   workers=1)
    cache.prepare(source, tmp_path / "cache", workers=1, max_crop=96)
    folder, cached = DataRoot.open(source), DataRoot.open(tmp_path / "cache")
    assert (folder.is_cache, folder.scale, folder.checksums) == (False, 1.0, None)
    assert cached.is_cache and cached.scale == 0.5 and len(cached.checksums) == 8
    assert folder.classes() == cached.classes() and folder.has_split("test")
    png, label = folder.samples("test")[1]
    jpg, same_label = cached.samples("test", folder.classes())[1]
    assert jpg == png.replace(str(source), str(tmp_path / "cache")) + ".jpg"
    assert label == same_label
    assert folder.read(png).size == (320, 180)
    assert isinstance(cached.read(jpg), TiledImage)  # training crops decode one tile
    relative = folder.relative(png)
    assert cached.locate(relative) == jpg and folder.locate(cached.relative(jpg)) == png
