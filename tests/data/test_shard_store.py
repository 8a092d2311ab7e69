"""A sharded cache served by an S3 server on loopback (moto's, a real HTTP server in its own
process) trains and evaluates like the local copy; two gloo ranks read disjoint samples."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN

from geoconvnet.data.root import DataRoot
from geoconvnet.data.shardwrite import prepare_shards
from geoconvnet.inference.evaluate import evaluate
from geoconvnet.training.train import train
from geoconvnet.utils.errors import DataError

boto3 = pytest.importorskip("boto3")
SECRET = "not-a-real-secret-7f3a"  # must never show in a message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    pytest.importorskip("moto.server")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the S3 test server did not start")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path):
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", SECRET),
                        ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", s3_server),
                        ("GEOCONVNET_SHARD_CACHE", str(tmp_path / "mirror"))):
        monkeypatch.setenv(name, value)
    return boto3.client("s3")


def _upload(client, folder: Path, bucket: str, prefix: str) -> str:
    client.create_bucket(Bucket=bucket)
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")
    return f"s3://{bucket}/{prefix}"


@pytest.fixture(scope="module")
def local_cache(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "cache"
    prepare_shards(tiny_data, out, scale=0.5, max_crop=108, workers=2, shard_size=16)
    return out


@pytest.mark.slow
def test_a_cache_in_s3_trains_and_evaluates_like_the_local_one(local_cache, s3_env, tmp_path):
    url = _upload(s3_env, local_cache, "geo", "caches/tiny")
    options = {**TINY_TRAIN, "epochs": 1, "max_steps": 3, "eval_view": "center"}
    run = train(data=url, runs_dir=str(tmp_path / "runs"), name="s3", **options)
    state = json.loads((run / "summary.json").read_text())
    assert state["best_epoch"] == 1 and state["optimizer_steps"] == 3  # of 8 in the epoch
    remote = evaluate(run, url, split="test", write=False).metrics
    local = evaluate(run, str(local_cache), split="test", write=False).metrics
    assert remote["top1"] == local["top1"] and abs(remote["loss"] - local["loss"]) < 1e-6


def test_a_replaced_object_or_a_wrong_bucket_is_named_without_secrets(local_cache, s3_env):
    url = _upload(s3_env, local_cache, "geo2", "c")
    root = DataRoot.open(url)
    sample = root.samples("test")[0][0]
    name = root.shards.shard_name(int(root.shards.arrays["shard"][sample]))
    s3_env.put_object(Bucket="geo2", Key=f"c/{name}", Body=b"not the shard")
    with pytest.raises(DataError, match="checksum mismatch after download") as caught:
        root.read(sample)
    mirror = root.shards.store.folder / "shards"
    assert not list(mirror.glob(Path(name).name + "*"))  # never kept
    with pytest.raises(DataError, match="s3://nobucket/x/geoconvnet-shards.json") as missing:
        DataRoot.open("s3://nobucket/x")
    for message in (str(caught.value), str(missing.value)):
        assert SECRET not in message and "testing" not in message


def _rank_main(rank: int, world: int, cache: str, init: str, out: str) -> None:
    from geoconvnet.data.index import index_dataset
    from geoconvnet.data.loader import make_loader

    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    index = index_dataset(cache, val_fraction=0.2, seed=0)
    loader = make_loader(index.train, lambda image: torch.zeros(1), 4, torch.device("cpu"),
                         shuffle=True, read=index.data.read, seed=0, num_workers=0,
                         rank=rank, world=world)
    loader.sampler.set_epoch(1)
    mine = [int(index.train[i][0]) for batch in loader for i in batch.indices.tolist()]
    gathered = [None] * world
    torch.distributed.all_gather_object(gathered, mine)
    if rank == 0:
        Path(out).write_text(json.dumps({"ranks": gathered, "train": len(index.train)}))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_read_disjoint_samples_whose_union_is_the_epoch(local_cache, tmp_path):
    out = tmp_path / "ranks.json"
    torch.multiprocessing.spawn(_rank_main, args=(2, str(local_cache),
                                                  f"file://{tmp_path / 'rendezvous'}", str(out)),
                                nprocs=2)
    result = json.loads(out.read_text())
    a, b = result["ranks"]
    assert len(a) == len(b) == result["train"] // 2  # 64 train images: 32 each
    assert not set(a) & set(b) and len(set(a) | set(b)) == result["train"]
