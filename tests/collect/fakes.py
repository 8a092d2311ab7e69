"""Local stand-ins for the collectors' web services, on 127.0.0.1 only: they answer in the
documented formats (Street View Static API metadata + image, Mapillary API v4 images +
thumbnails), with rate limits, server errors, empty areas and refused credentials."""

from __future__ import annotations

import io
import json
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image

GOOD_KEY = "AIzaFAKE-streetview-key-0123456789"
GOOD_TOKEN = "MLY|fake|mapillary-token-0123456789"


def jpeg(seed: str, size=(160, 90)) -> bytes:
    shade = zlib.crc32(seed.encode()) % 200
    buffer = io.BytesIO()
    Image.new("RGB", size, (shade, 255 - shade, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


class FakeService:
    """A threaded server; ``handle(path, query, headers)`` -> (status, headers, body)."""

    def __init__(self):
        self.requests = Counter()  # path -> count
        self.seen_urls: list[str] = []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with service.lock:
                    service.requests[parts.path] += 1
                    service.seen_urls.append(self.path)
                    count = service.requests[parts.path]
                status, headers, body = service.handle(parts.path, query, self.headers, count)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _json(status: int, data, **headers):
    return status, {"Content-Type": "application/json", **headers}, json.dumps(data).encode()


class FakeStreetView(FakeService):
    """/metadata and / (the image) of the Street View Static API. ``long_retry_after``: the
    first answer is a 429 asking to come back in an hour."""

    def __init__(self, long_retry_after: bool = False):
        self.long_retry_after = long_retry_after
        super().__init__()

    def handle(self, path, query, headers, count):
        if query.get("key") != GOOD_KEY:
            return _json(200, {"status": "REQUEST_DENIED", "error_message":
                               f"The provided API key is invalid: {query.get('key')}"})
        if self.long_retry_after and count == 1:
            return _json(429, {"error_message": "come back later"}, **{"Retry-After": "3600"})
        if count % 5 == 0:
            return _json(429, {"error_message": "slow down"}, **{"Retry-After": "0"})
        if count % 7 == 0:
            return 503, {}, b"unavailable"
        if path.endswith("/metadata"):
            lat, lng = (float(v) for v in query["location"].split(","))
            if zlib.crc32(query["location"].encode()) % 3 == 0:
                return _json(200, {"status": "ZERO_RESULTS"})
            # the nearest panorama: snapped to a 0.05-degree grid (so some repeat)
            snap_lat, snap_lng = round(lat * 20) / 20, round(lng * 20) / 20
            return _json(200, {"status": "OK", "pano_id": f"pano_{snap_lat:.2f}_{snap_lng:.2f}",
                               "location": {"lat": snap_lat, "lng": snap_lng},
                               "date": "2019-06", "copyright": "© Test Imagery"})
        width, height = (int(v) for v in query["size"].split("x"))
        return 200, {"Content-Type": "image/jpeg"}, jpeg(query["pano"], (width, height))


class FakeImageHost(FakeService):
    """Where Mapillary's thumbnails live (another host than the API): every fourth link has
    expired (403). Records the Authorization headers it was sent."""

    def __init__(self):
        self.authorization: list[str] = []
        super().__init__()

    def handle(self, path, query, headers, count):
        self.authorization.append(headers.get("Authorization"))
        if len(self.authorization) % 4 == 0:
            return 403, {}, b"URL signature expired"
        return 200, {"Content-Type": "image/jpeg"}, jpeg(path)


class FakeMapillary(FakeService):
    """/images (bbox search) of the Mapillary API v4; thumbnails on a FakeImageHost."""

    def __init__(self):
        self.images = FakeImageHost()
        super().__init__()

    def close(self):
        self.images.close()
        super().close()

    def handle(self, path, query, headers, count):
        if headers.get("Authorization") != f"OAuth {GOOD_TOKEN}":
            return _json(401, {"error": {"message": "Invalid OAuth access token.",
                                         "type": "OAuthException", "code": 190}})
        if count % 4 == 0:
            return _json(429, {"error": {"message": "rate limited"}}, **{"Retry-After": "0"})
        if count % 9 == 0:
            return 500, {}, b"oops"
        lon0, lat0, lon1, lat1 = (float(v) for v in query["bbox"].split(","))
        if zlib.crc32(query["bbox"].encode()) % 4 == 0:
            return _json(200, {"data": []})
        items = []
        for k in range(3):
            lat, lon = lat0 + (lat1 - lat0) * (k + 1) / 4, lon0 + (lon1 - lon0) * (k + 1) / 4
            image_id = f"{abs(zlib.crc32(f'{lat:.4f},{lon:.4f}'.encode()))}{k}"
            items.append({"id": image_id,
                          "thumb_2048_url": f"{self.images.url}/thumb/{image_id}.jpg",
                          "computed_geometry": {"type": "Point", "coordinates": [lon, lat]},
                          "captured_at": 1561939200000, "compass_angle": 90.0 * k,
                          "creator": {"username": "tester", "id": "7"}})
        return _json(200, {"data": items})
