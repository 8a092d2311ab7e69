"""Local stand-ins for the collectors' web services, on 127.0.0.1 only: they answer in the
documented formats (Street View Static API metadata + image, Mapillary API v4 images +
thumbnails), with rate limits, server errors, empty areas and refused credentials, and the
faults of real networks and services on demand (:data:`FAULTS`): an HTML page or a
truncated JPEG with status 200, a body cut mid-way by a dropped connection, an image under
a text Content-Type, a refused image request (403) and a used-up quota."""

from __future__ import annotations

import io
import json
import socket
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image

GOOD_KEY = "AIzaFAKE-streetview-key-0123456789"
GOOD_TOKEN = "MLY|fake|mapillary-token-0123456789"


class Cut(bytes):
    """A body the server announces in full (Content-Length) but drops the connection after
    sending half of: what a reset or a proxy timeout does mid-download."""


def fault_response(kind: str, body: bytes):
    """(status, headers, body) of a fault of ``kind`` in place of the image ``body``."""
    html = b"<!doctype html><html><body><h1>Service temporarily unavailable</h1></body></html>"
    return {
        "html": (200, {"Content-Type": "text/html; charset=utf-8"}, html),
        "truncated": (200, {"Content-Type": "image/jpeg"}, body[:len(body) // 2]),
        "cut": (200, {"Content-Type": "image/jpeg"}, Cut(body)),
        "wrong-type": (200, {"Content-Type": "text/plain"}, body),
        "forbidden": (403, {"Content-Type": "text/plain"},
                      b"The Google Maps Platform server rejected your request. This API "
                      b"project is not authorized to use this API."),
        "quota": (403, {"Content-Type": "text/plain"},
                  b"You have exceeded your daily request quota for this API."),
    }[kind]


FAULTS = ("html", "truncated", "cut", "wrong-type", "forbidden", "quota")


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
                if isinstance(body, Cut):
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
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
    first answer is a 429 asking to come back in an hour. ``noise``: every 5th request of a
    path is a 429 and every 7th a 503. ``image_fault(n, pano)``: the fault (one of FAULTS, or
    None) of the n-th image request; ``metadata_fault(n)`` likewise for metadata, which also
    knows "cut" and "over-quota" (the JSON status OVER_QUERY_LIMIT)."""

    def __init__(self, long_retry_after: bool = False, noise: bool = True,
                 image_fault=None, metadata_fault=None):
        self.long_retry_after, self.noise = long_retry_after, noise
        self.image_fault = image_fault or (lambda n, pano: None)
        self.metadata_fault = metadata_fault or (lambda n: None)
        super().__init__()

    def handle(self, path, query, headers, count):
        if query.get("key") != GOOD_KEY:
            return _json(200, {"status": "REQUEST_DENIED", "error_message":
                               f"The provided API key is invalid: {query.get('key')}"})
        if self.long_retry_after and count == 1:
            return _json(429, {"error_message": "come back later"}, **{"Retry-After": "3600"})
        if self.noise and count % 5 == 0:
            return _json(429, {"error_message": "slow down"}, **{"Retry-After": "0"})
        if self.noise and count % 7 == 0:
            return 503, {}, b"unavailable"
        if path.endswith("/metadata"):
            return self._metadata(query, count)
        width, height = (int(v) for v in query["size"].split("x"))
        image = jpeg(query["pano"], (width, height))
        fault = self.image_fault(count, query["pano"])
        return fault_response(fault, image) if fault else \
            (200, {"Content-Type": "image/jpeg"}, image)

    def _metadata(self, query, count):
        fault = self.metadata_fault(count)
        if fault == "over-quota":
            return _json(200, {"status": "OVER_QUERY_LIMIT", "error_message":
                               "You have exceeded your daily request quota for this API."})
        lat, lng = (float(v) for v in query["location"].split(","))
        if zlib.crc32(query["location"].encode()) % 3 == 0:
            answer = {"status": "ZERO_RESULTS"}
        else:  # the nearest panorama: snapped to a 0.05-degree grid (so some repeat)
            snap_lat, snap_lng = round(lat * 20) / 20, round(lng * 20) / 20
            answer = {"status": "OK", "pano_id": f"pano_{snap_lat:.2f}_{snap_lng:.2f}",
                      "location": {"lat": snap_lat, "lng": snap_lng},
                      "date": "2019-06", "copyright": "© Test Imagery"}
        body = json.dumps(answer).encode()
        return 200, {"Content-Type": "application/json"}, Cut(body) if fault == "cut" else body


class FakeImageHost(FakeService):
    """Where Mapillary's thumbnails live (another host than the API): every fourth link has
    expired (403); ``fault(n)``: the fault (one of FAULTS, or None) of the n-th download.
    Records the Authorization headers it was sent."""

    def __init__(self, fault=None):
        self.authorization: list[str] = []
        self.fault = fault or (lambda n: None)
        super().__init__()

    def handle(self, path, query, headers, count):
        self.authorization.append(headers.get("Authorization"))
        fault = self.fault(len(self.authorization))
        if fault:
            return fault_response(fault, jpeg(path))
        if len(self.authorization) % 4 == 0:
            return 403, {}, b"URL signature expired"
        return 200, {"Content-Type": "image/jpeg"}, jpeg(path)


class FakeMapillary(FakeService):
    """/images (bbox search) of the Mapillary API v4; thumbnails on a FakeImageHost."""

    def __init__(self, image_fault=None):
        self.images = FakeImageHost(image_fault)
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
