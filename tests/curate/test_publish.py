import hashlib

from geoconvnet.cli import main
from geoconvnet.data.manifest import open_manifest
from geoconvnet.data.synth import synth


def _contents(root):
    """(split, country) -> sorted content hashes."""
    found = {}
    for path in sorted(root.rglob("*.png")):
        split, country = path.relative_to(root).parts[:2]
        found.setdefault((split, country), []).append(hashlib.sha256(path.read_bytes())
                                                      .hexdigest())
    return {k: sorted(v) for k, v in found.items()}


def test_a_published_root_imports_back_identical(tmp_path, capsys):
    root = synth(tmp_path / "d", classes=2, per_class=3, test_per_class=1, size=(160, 90),
                 workers=1)
    country = sorted(p.name for p in (root / "train").iterdir())[0]
    with open(root / "collect-manifest.jsonl", "w") as f:
        f.write(f'{{"file": "train/{country}/1.png", "split": "train", "country": "{country}", '
                '"source": "mapillary", "source_id": "77", "lat": 41.33, "lon": 19.82, '
                '"author": "ana", "licence": "CC BY-SA 4.0"}\n')
    assert main(["data", "publish", str(root), "--to-folder", str(tmp_path / "hub")]) == 0
    assert "train 6 images, test 2 images" in capsys.readouterr().out
    shards = sorted(p.name for p in (tmp_path / "hub" / "data").iterdir())
    assert shards == ["test-00000-of-00001.parquet", "train-00000-of-00001.parquet"]
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "license: other" in card and "ana (1)" in card and f"| {country} | 3 | 1 |" in card
    assert main(["data", "import", "hf", str(tmp_path / "hub"), "--out",
                 str(tmp_path / "back")]) == 0
    assert _contents(tmp_path / "back") == _contents(root)
    assert sorted(p.name for p in (tmp_path / "back" / "train" / country).iterdir()) == \
        ["0.png", "1.png", "2.png"]
    [record] = open_manifest(tmp_path / "back").records
    assert (record.file, record.lat, record.lon, record.author, record.source_id) == \
        (f"train/{country}/1.png", 41.33, 19.82, "ana", "77")


class FakeHub:
    """The Hub's /api/whoami-v2 and /api/repos/create on 127.0.0.1, answering as ``who``
    (None: 401, an invalid token); counts the requests it got."""

    def __init__(self, who):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        hub = self
        self.paths = []

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                hub.paths.append(self.path)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if who is None or not self.path.startswith("/api/whoami"):
                    status, body = (401, {"error": "Invalid credentials"}) if who is None \
                        else (200, {"url": f"{hub.url}/datasets/x/y"})
                else:
                    status, body = 200, who
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _small_root(tmp_path):
    return synth(tmp_path / "d", classes=2, per_class=2, test_per_class=1, size=(160, 90),
                 workers=1)


def test_access_is_checked_before_any_shard_is_built(tmp_path):
    import re
    import socket

    import pytest

    from geoconvnet.curate.publish import publish
    from geoconvnet.utils.errors import ConfigError

    root = _small_root(tmp_path)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the connection is refused
    cases = [(None, "did not accept the token or could not be reached (HTTP 401)"),
             ({"name": "ana", "orgs": [], "auth": {"accessToken": {"role": "read"}}},
              "a read-only token"),
             ({"name": "bob", "orgs": [{"name": "lab"}], "auth": {"accessToken":
                                                                 {"role": "write"}}},
              "the token is 'bob''s, who may not write to 'ana'")]
    for who, message in cases:
        hub = FakeHub(who)
        try:
            with pytest.raises(ConfigError, match=re.escape(message)):
                publish(root, tmp_path / "out", "ana/streets", token="hf_fake", workers=1,
                        endpoint=hub.url)
        finally:
            hub.close()
        assert hub.paths and not (tmp_path / "out").exists()  # asked first, built nothing
    with pytest.raises(ConfigError, match="could not be reached"):
        publish(root, tmp_path / "out", "ana/streets", token="hf_fake", workers=1,
                endpoint=f"http://127.0.0.1:{port}")
    assert not (tmp_path / "out").exists()


def test_undecodable_images_are_listed_and_nothing_is_published(tmp_path, capsys):
    root = _small_root(tmp_path)
    country = sorted(p.name for p in (root / "train").iterdir())[0]
    good = (root / "train" / country / "0.png").read_bytes()
    (root / "train" / country / "cut.png").write_bytes(good[:len(good) // 2])
    (root / "test" / country / "page.jpg").write_bytes(b"<html>404</html>")
    assert main(["data", "publish", str(root), "--to-folder", str(tmp_path / "hub"),
                 "--workers", "1"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "2 image(s)" in errors[0] and "cut.png" in errors[0]
    assert "page.jpg" in errors[0] and "--move-rejects" in errors[0]
    assert not (tmp_path / "hub").exists()


def test_only_shards_it_wrote_are_replaced(tmp_path, capsys):
    root = _small_root(tmp_path)
    out = tmp_path / "hub"
    assert main(["data", "publish", str(root), "--to-folder", str(out), "--workers", "1"]) == 0
    assert main(["data", "publish", str(root), "--to-folder", str(out), "--workers", "1"]) == 0
    (out / "data" / "mine.parquet").write_bytes(b"a user's file")
    capsys.readouterr()
    assert main(["data", "publish", str(root), "--to-folder", str(out), "--workers", "1"]) == 2
    assert "did not write (mine.parquet)" in capsys.readouterr().err
    assert (out / "data" / "mine.parquet").read_bytes() == b"a user's file"
    assert len(list((out / "data").glob("*.parquet"))) == 3


def test_bad_settings_are_one_line_before_any_work(tmp_path, capsys):
    root = _small_root(tmp_path)
    (tmp_path / "a-file").write_text("x")
    capsys.readouterr()
    for args, message in ((["--to-folder", str(tmp_path / "a-file")], "is a file, not a folder"),
                          (["--to-folder", str(tmp_path / "o"), "--workers", "-1"],
                           "--workers must be at least 1")):
        assert main(["data", "publish", str(root), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o").exists()
