"""What keeps ``data dedup``'s memory a few hundred bytes an image: compact paths and
digests, and a near-neighbour search done in blocks with the same result."""

import hashlib

import numpy as np

from geoconvnet.curate import dedup
from geoconvnet.curate.pathlist import Digests, PathList


def test_paths_come_back_as_given_and_relative_to_the_root(tmp_path):
    root = tmp_path / "root"
    paths = [str(root / "train/Ägypten/1.jpg"), str(root / "test/B/bad\udcff.png")]
    listed = PathList(paths, root)
    assert list(listed) == paths and listed[-1] == paths[-1] and listed[0:1] == paths[:1]
    assert list(listed.relative) == ["train/Ägypten/1.jpg", "test/B/bad\udcff.png"]
    elsewhere = PathList(paths + ["/other/x.jpg"], root)  # not all under the root
    assert list(elsewhere) == paths + ["/other/x.jpg"]


def test_digests_keep_trailing_zero_bytes_and_no_digest_is_empty():
    digests = Digests(3)
    ending_in_zero = hashlib.sha256(b"x").digest()[:31] + b"\0"
    digests.set(0, ending_in_zero)
    digests.set(1, hashlib.sha256(b"y").hexdigest())
    assert digests[0] == ending_in_zero.hex() and digests[1] == hashlib.sha256(b"y").hexdigest()
    assert digests[2] == "" and digests.digest(2) == b""
    assert list(np.asarray(digests, "<U64")) == [digests[0], digests[1], ""]


def _hashes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**63, n // 4, dtype=np.uint64)
    near = centres[rng.integers(0, len(centres), (n, 17))]
    for _ in range(3):  # a few bits flipped in each hash
        near ^= np.uint64(1) << rng.integers(0, 64, near.shape).astype(np.uint64)
    near[5::9] = near[4]  # identical images
    return near, rng.random(n) > 0.1


def test_the_search_in_small_blocks_finds_what_one_block_finds_and_only_close_pairs(
        monkeypatch):
    hashes, valid = _hashes(600, 0)
    whole = dedup._close_pairs(hashes[:, 0], valid, 6, values=hashes.reshape(-1))
    halves = dedup._close_pairs(hashes[:, 1], valid, 4)
    monkeypatch.setattr(dedup, "SEARCH_BLOCK", 301)  # many blocks of index and queries
    assert np.array_equal(whole, dedup._close_pairs(hashes[:, 0], valid, 6,
                                                    values=hashes.reshape(-1)))
    assert np.array_equal(halves, dedup._close_pairs(hashes[:, 1], valid, 4))
    assert len(whole) > 600 and valid[whole].all() and valid[halves].all()
    bits = np.bitwise_count(hashes[whole[:, 0], 0][:, None] ^ hashes[whole[:, 1]])
    assert (bits.min(1) <= 6).all()  # each pair close through one of the 17 hashes
    # the close pairs of distinct whole-frame hashes are found (identical ones are linked
    # through the first of them)
    first = np.zeros(len(hashes), bool)
    first[np.unique(hashes[:, 0], return_index=True)[1]] = True
    bits = np.bitwise_count(hashes[:, 0][:, None] ^ hashes[:, 0])
    truth = np.argwhere(np.triu((bits <= 4) & (bits > 0), 1) & (valid & first)[:, None]
                        & (valid & first))
    found = {frozenset(p) for p in whole.tolist()}
    assert len(truth) > 100 and np.mean([frozenset(p) in found for p in truth.tolist()]) > 0.97
