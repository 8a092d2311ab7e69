"""The sharded cache: what `prepare --format shards` writes, resumes and updates, and how
training reads it (random access, checksums, WebDataset compatibility, rank sampling)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geoconvnet.data.cache import prepare
from geoconvnet.data.index import index_dataset
from geoconvnet.data.root import DataRoot
from geoconvnet.data.shards import (TABLE, ShardEpochSampler, ShardSamples, split_train_val,
                                     verify)
from geoconvnet.data.shardwrite import prepare_shards
from geoconvnet.utils.errors import DataError

SETTINGS = dict(scale=0.5, max_crop=108, workers=2)


@pytest.fixture(scope="module")
def sharded(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("sharded") / "cache"
    prepare_shards(tiny_data, out, shard_size=16, **SETTINGS)
    return out


def _index_state(out: Path) -> dict:
    """What a finished prepare is: the shards' checksums and every index column."""
    table = json.loads((out / TABLE).read_text())
    root = DataRoot.open(out)
    arrays = {k: np.asarray(v).tolist() for k, v in root.shards.arrays.items()}
    keys = [root.shards.key(i) for i in range(len(root.shards))]
    places = root.shards.coordinates(np.arange(len(root.shards)))
    return {"shards": [(s["name"], s["sha256"], s["count"]) for s in table["shards"]],
            "arrays": arrays, "keys": keys, "classes": table["classes"],
            "coordinates": np.nan_to_num(places, nan=999.0).tolist()}  # NaN != NaN in lists


def test_shards_hold_the_same_images_as_the_file_cache(tiny_data, sharded, tmp_path):
    files = tmp_path / "files"
    prepare(tiny_data, files, scale=0.5, max_crop=108, workers=2)
    root = DataRoot.open(sharded)
    index = index_dataset(root, val_fraction=0.2)
    assert len(index.train) + len(index.val) == 80 and len(index.test) == 32
    file_root = DataRoot.open(files)
    for sample, label in list(index.test)[:5] + list(index.train)[:5]:
        key = root.relative(sample)
        ours = root.read(sample)
        theirs = file_root.read(str(files / (key + ".jpg")))
        assert np.array_equal(np.asarray(ours.to_pil()), np.asarray(theirs.to_pil()))
        assert root.classes()[label] == key.split("/")[1]


def test_a_file_cache_converts_to_shards_without_reencoding(tiny_data, sharded, tmp_path):
    files = tmp_path / "files"
    prepare(tiny_data, files, scale=0.5, max_crop=108, workers=2)
    converted = prepare_shards(files, tmp_path / "converted", shard_size=16, scale=1.0,
                               workers=2)  # the file cache's own settings win
    assert converted["images"] == 112
    ours, direct = _index_state(tmp_path / "converted"), _index_state(sharded)
    assert ours["keys"] == direct["keys"] and ours["shards"] == direct["shards"]


def test_validation_split_is_stratified_seeded_and_disjoint(sharded):
    root = DataRoot.open(sharded)
    train = root.samples("train")
    keyhash = root.shards.arrays["keyhash"]
    a_train, a_val = split_train_val(train, keyhash, 0.25, seed=0)
    b_train, b_val = split_train_val(train, keyhash, 0.25, seed=0)
    c_train, c_val = split_train_val(train, keyhash, 0.25, seed=1)
    assert a_val.ids.tolist() == b_val.ids.tolist() != c_val.ids.tolist()
    assert np.bincount(a_val.labels).tolist() == [5, 5, 5, 5]  # 25% of 20 per class
    assert not set(a_train.ids) & set(a_val.ids)
    assert len(a_train) + len(a_val) == len(train)


def test_tar_shards_read_with_webdataset(sharded):
    webdataset = pytest.importorskip("webdataset")
    tars = sorted(str(p) for p in (sharded / "shards").glob("test-*.tar"))
    seen = list(webdataset.WebDataset(tars, shardshuffle=False))
    assert len(seen) == 32
    first = seen[0]
    assert json.loads(first["json"])["path"].startswith("test/")
    Image.open(__import__("io").BytesIO(first["jpg"])).verify()


def test_a_corrupted_sample_or_a_missing_shard_is_named_when_read(sharded, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sharded, copy)
    root = DataRoot.open(copy)  # opening reads no shard: no start-up cost
    sample, other = root.samples("train")[0][0], root.samples("train")[1][0]
    arrays = root.shards.arrays
    shard = copy / root.shards.shard_name(int(arrays["shard"][sample]))
    data = bytearray(shard.read_bytes())
    data[int(arrays["offset"][sample]) + int(arrays["length"][sample]) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match=rf"{shard.name}:{root.relative(sample)}: corrupted"):
        DataRoot.open(copy).read(sample)
    if arrays["shard"][other] == arrays["shard"][sample]:
        DataRoot.open(copy).read(other)  # the rest of the shard still reads
    checked, bad = verify(copy)
    assert checked == 11 + 7 and list(bad) == [f"shards/{shard.name}"]  # 11 index files
    shard.unlink()
    with pytest.raises(DataError, match=rf"{shard.name}: shard missing"):
        DataRoot.open(copy).read(sample)
    index = copy / json.loads((copy / TABLE).read_text())["index"]["folder"] / "label.npy"
    index.write_bytes(index.read_bytes()[:-1] + b"\x07")
    with pytest.raises(DataError, match="label.npy: corrupted index file"):
        DataRoot.open(copy).samples("train")


def test_a_recorded_split_is_found_by_source_or_file_cache_names(sharded):
    root = DataRoot.open(sharded)
    samples = root.samples("train")
    ids = [samples[i][0] for i in (0, 7, 33)]
    keys = [root.relative(i) for i in ids]
    assert root.shards.find(keys) == ids
    assert root.shards.find([k + ".jpg" for k in keys]) == ids  # a run on the file cache
    with pytest.raises(DataError, match="not in this cache: train/Nowhere/1.png"):
        root.shards.find(["train/Nowhere/1.png"])


def test_an_unchanged_rerun_writes_nothing_and_changes_are_incremental(tiny_data, tmp_path):
    data, out = tmp_path / "data", tmp_path / "cache"
    shutil.copytree(tiny_data, data)
    first = prepare_shards(data, out, shard_size=16, **SETTINGS)
    table = out / TABLE
    stamp = table.stat().st_mtime_ns
    again = prepare_shards(data, out, shard_size=16, **SETTINGS)
    assert again["unchanged"] and again["converted"] == 0 and table.stat().st_mtime_ns == stamp
    country = sorted((data / "train").iterdir())[0]
    shutil.copy(country / "0.png", country / "new.png")  # new
    Image.new("RGB", (384, 216), (9, 9, 9)).save(country / "1.png")  # changed
    (country / "2.png").unlink()  # removed
    (country / "3.png").write_bytes(b"<html>not an image</html>")  # now unreadable
    update = prepare_shards(data, out, shard_size=16, **SETTINGS)
    assert update["converted"] == 2 and update["bad"] == 1  # only new + changed (+ the bad)
    assert update["images"] == first["images"] - 1 and update["generation"] == 2
    assert not (out / "index-0001").exists()  # the old index it wrote is gone
    root = DataRoot.open(out)
    keys = {root.relative(s) for s, _ in root.samples("train")}
    name = f"train/{country.name}"
    assert {f"{name}/new.png", f"{name}/1.png"} <= keys
    assert f"{name}/2.png" not in keys and f"{name}/3.png" not in keys
    assert str(data / name / "3.png") in root.bad_files
    named = {s["name"] for s in json.loads(table.read_text())["shards"]}
    assert {p.name.rsplit(".", 1)[0] for p in (out / "shards").iterdir()} == named  # no orphans
    (country / "4.png").unlink()  # a deletion alone (as `dedup --move` makes) is a change too
    gone = prepare_shards(data, out, shard_size=16, **SETTINGS)
    assert not gone["unchanged"] and gone["converted"] == 0
    assert gone["images"] == update["images"] - 1


def _kill_when_shards_exist(cmd: list[str], folder: Path, count: int) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list(folder.glob("*.json"))) >= count:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole pool: workers die too
            break
        time.sleep(0.05)
    proc.wait()
    assert not (folder.parent / TABLE).exists(), "finished before the kill: use smaller shards"


@pytest.mark.slow
def test_a_killed_prepare_resumes_without_redoing_finished_shards(tiny_data, tmp_path):
    out, whole = tmp_path / "cache", tmp_path / "whole"
    cmd = [sys.executable, "-m", "geoconvnet", "data", "prepare", str(tiny_data), "--out",
           str(out), "--format", "shards", "--shard-size", "8", "--workers", "1",
           "--scale", "0.5", "--max-crop", "108"]
    _kill_when_shards_exist(cmd, out / "shards", 3)
    done = len(list((out / "shards").glob("*.json")))
    resumed = prepare_shards(tiny_data, out, shard_size=8, **SETTINGS)
    assert resumed["shards_resumed"] == done and resumed["converted"] == 112 - 8 * done
    prepare_shards(tiny_data, whole, shard_size=8, **SETTINGS)
    assert _index_state(out) == _index_state(whole)  # same bytes, same index


def test_nodes_write_their_own_shards_and_the_last_writes_the_index(tiny_data, tmp_path):
    out = tmp_path / "cache"
    a = prepare_shards(tiny_data, out, shard_size=16, nodes=2, node_rank=1, **SETTINGS)
    assert (a["shards_written"], a["waiting"]) == (3, 4)  # 7 shards: 5 train, 2 test
    assert not (out / TABLE).exists()
    b = prepare_shards(tiny_data, out, shard_size=16, nodes=2, node_rank=0, **SETTINGS)
    assert "waiting" not in b and b["shards_resumed"] == a["shards_written"]
    assert b["images"] == 112
    with pytest.raises(DataError, match="--node-rank"):
        prepare_shards(tiny_data, out, nodes=2, node_rank=2, **SETTINGS)


@pytest.mark.parametrize("n,shard,world", [(100, 7, 2), (96, 16, 3), (5, 4, 4), (33, 10, 1)])
def test_ranks_read_disjoint_samples_whose_union_is_the_epoch(n, shard, world):
    samples = ShardSamples(np.arange(n), np.zeros(n, np.int64), np.arange(n) // shard)
    for shuffle in (True, False):
        ranks = [ShardEpochSampler(samples, 3, shuffle, r, world) for r in range(world)]
        for r in ranks:
            r.set_epoch(2)
        parts = [r.positions() for r in ranks]
        assert {len(p) for p in parts} == {-(-n // world)}  # same steps on every rank
        real = [p[:max(0, min(len(p), n - i * len(p)))] for i, p in enumerate(parts)]
        flat = np.concatenate(real)
        assert sorted(flat.tolist()) == list(range(n))  # disjoint, and the union is all
        if world > 1 and n // world >= 2 * shard:  # each rank reads few shards
            assert len(set(samples.shards[real[0]])) <= -(-len(real[0]) // shard) + 1
    again = ShardEpochSampler(samples, 3, True, 0, world)
    again.set_epoch(3)
    assert again.positions().tolist() != ranks[0].positions().tolist()  # new epoch, new order


def test_a_lost_member_list_costs_only_its_shard(tiny_data, tmp_path):
    out = tmp_path / "cache"
    first = prepare_shards(tiny_data, out, shard_size=16, **SETTINGS)
    lost = sorted((out / "shards").glob("train-*.json"))[0]
    count = len(json.loads(lost.read_text())["members"])
    lost.unlink()
    again = prepare_shards(tiny_data, out, shard_size=16, **SETTINGS)
    assert again["converted"] == count and again["images"] == first["images"]
    assert not (out / "shards" / lost.with_suffix(".tar").name).exists()  # swept: ours


def test_a_resumed_run_with_other_settings_rewrites_the_shards(tiny_data, tmp_path):
    out = tmp_path / "cache"
    first = prepare_shards(tiny_data, out, shard_size=16, nodes=2, node_rank=0, **SETTINGS)
    assert first["waiting"]  # shards written, no table: as a killed run leaves them
    other = prepare_shards(tiny_data, out, shard_size=16, quality=80, scale=0.5, max_crop=108,
                           workers=2)
    assert other["shards_resumed"] == 0 and other["converted"] == 112


def test_a_country_only_in_test_is_refused_before_any_shard_is_written(tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    country = sorted((data / "train").iterdir())[0]
    shutil.rmtree(country)
    with pytest.raises(DataError, match=f"{country.name}.*no train folder"):
        prepare_shards(data, tmp_path / "cache", **SETTINGS)
    assert not (tmp_path / "cache" / "shards").exists()


def test_prepare_refuses_a_folder_of_other_files(tiny_data, tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="other files"):
        prepare_shards(tiny_data, tmp_path, **SETTINGS)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


@pytest.mark.slow
def test_a_head_trains_on_embeddings_of_a_sharded_cache(sharded, tmp_path):
    from conftest import TINY_TRAIN

    from geoconvnet.training.train import train

    options = {**TINY_TRAIN, "epochs": 2, "freeze_backbone": True, "eval_view": "center"}
    cache = tmp_path / "embeddings"
    for name in ("a", "b"):
        run = train(data=str(sharded), runs_dir=str(tmp_path), name=name,
                    embedding_cache=str(cache), **options)
        summary = json.loads((run / "summary.json").read_text())
    assert summary["embeddings_computed"] == 0 and summary["embeddings_cached"] == 80
