"""HTTP for the API sources: retries with backoff on rate limits and server errors
(urllib3's Retry, honouring Retry-After up to ``max_wait``) and on connections that fail or
are cut mid-body (here: urllib3 retries only up to the response's headers); one clear error
for refused credentials; images checked before they are kept (an image type, decoded in
full: an HTML page or a truncated body is retried, then skipped); and secrets (keys,
tokens) kept out of every message and log line."""

from __future__ import annotations

import logging
import re
import time

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from ..data.images import checked_image
from ..utils.errors import DataError, GeoconvnetError

RETRY_STATUS = (429, 500, 502, 503, 504)
REFUSED_STATUS = (401, 403)
GONE_STATUS = (403, 404, 410)  # an image that expired or was deleted: skip it
# Failures of the connection itself, also while the body is read: worth another try.
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
             requests.exceptions.ContentDecodingError)


class CollectError(GeoconvnetError):
    """A source cannot go on: a refused key, a blocked account, a quota, a site that
    changed, or a server that kept failing."""


class Unusable(Exception):
    """A download that stayed unusable after its retries (not an image, cut short): the
    source skips that place."""


class Refused(Exception):
    """The server refused an image download (401/403) with this status and detail."""


_SECRETS: set[str] = set()  # every key and token a Client was given, for the log filter


def redact(text: str, secrets=()) -> str:
    """``text`` with the given secrets, and any ``key=``/``token=`` value, masked."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return re.sub(r"(?i)((?:key|token|access_token|signature)=)[^&\s]+", r"\1***", text)


class _RedactLogs(logging.Filter):
    """urllib3 logs the URLs it retries (warnings) and fetches (debug): mask secrets there
    too, whatever logging a program sets up."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage(), _SECRETS), ()
        return True


for _name in ("urllib3.connectionpool", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_RedactLogs())


class Client:
    """A ``requests`` session that retries and never shows ``secrets``. ``auth`` headers go
    only with :meth:`json` calls to the API itself, never with image downloads (which may
    be served by another host). ``retries`` and ``backoff`` also apply to connections that
    fail or are cut mid-body, and to image bodies that are not usable images."""

    def __init__(self, source: str, secrets: tuple[str, ...] = (), retries: int = 5,
                 backoff: float = 1.0, max_wait: float = 120.0, timeout: float = 30.0,
                 auth: dict | None = None):
        self.source, self.secrets, self.timeout = source, tuple(s for s in secrets if s), timeout
        self.retries, self.backoff, self.max_wait = retries, backoff, max_wait
        self.auth = auth or {}
        self.session = requests.Session()
        # Status retries only: connection errors are retried by _get, body included.
        retry = Retry(total=None, connect=0, read=0, other=0, status=retries,
                      backoff_factor=backoff, status_forcelist=RETRY_STATUS,
                      allowed_methods=["GET"], respect_retry_after_header=True,
                      backoff_max=max_wait, retry_after_max=max_wait, raise_on_status=False)
        for prefix in ("http://", "https://"):
            self.session.mount(prefix, HTTPAdapter(max_retries=retry))
        _SECRETS.update(self.secrets)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def json(self, url: str, params: dict | None = None) -> dict:
        """An API call: refused credentials end the run with one clear error."""
        response = self._get(url, params, self.auth)
        if response.status_code in REFUSED_STATUS:
            raise CollectError(f"{self.source}: the server refused the credentials (HTTP "
                               f"{response.status_code}: {self.redact(_detail(response))}); "
                               "check the key or token, and that the account may use this API")
        self._check(response)
        try:
            return response.json()
        except ValueError:
            raise CollectError(f"{self.source}: {self.redact(_url(response))} did not answer "
                               "JSON; has the API changed?") from None

    def image(self, url: str, params: dict | None = None, refused: bool = False) -> bytes | None:
        """An image's bytes, checked (see :func:`checked_image`); None when it is gone
        (expired link, deleted image). With ``refused``, a 401/403 raises :class:`Refused`
        instead of counting as gone. A body that is not a usable image is fetched again
        (``retries`` times, with backoff), then :class:`Unusable` says why; so does a
        connection or a server error that outlasted its retries: one bad image is skipped,
        and the collector stops when every place is skipped (an outage)."""
        for attempt in range(self.retries + 1):
            if attempt:
                self._pause(attempt)
            try:
                response = self._get(url, params, {})
                if refused and response.status_code in REFUSED_STATUS:
                    raise Refused(f"HTTP {response.status_code}: "
                                  f"{self.redact(_detail(response))}")
                if response.status_code in GONE_STATUS:
                    return None
                self._check(response)
            except CollectError as exc:
                raise Unusable(str(exc).removeprefix(f"{self.source}: ")) from None
            problem = _image_problem(response)
            if problem is None:
                return response.content
        raise Unusable(f"{problem} (after {self.retries} retries)" if self.retries else problem)

    def _get(self, url: str, params: dict | None, headers: dict) -> requests.Response:
        """GET with the body read; a failed or cut connection is tried again."""
        for attempt in range(self.retries + 1):
            if attempt:
                self._pause(attempt)
            try:
                response = self.session.get(url, params=params, headers=headers,
                                            timeout=self.timeout)
                response.content  # noqa: B018 (reads the body: a cut body raises here)
                return response
            except TRANSIENT as exc:
                problem = _connection_problem(exc)
            except requests.RequestException as exc:  # a bad URL: no retry helps
                raise CollectError(f"{self.source}: request failed: "
                                   f"{self.redact(str(exc))}") from None
        tries = f"after {self.retries} retries" if self.retries else "(no retries)"
        raise CollectError(f"{self.source}: request failed {tries}: "
                           f"{self.redact(problem)}")

    def _pause(self, attempt: int) -> None:
        time.sleep(min(self.max_wait, self.backoff * 2 ** (attempt - 1)))

    def _check(self, response: requests.Response) -> None:
        if response.status_code >= 400:
            tries = response.raw.retries.history if response.raw is not None and \
                getattr(response.raw, "retries", None) is not None else ()
            after = f" after {len(tries)} retries" if tries else ""
            raise CollectError(f"{self.source}: HTTP {response.status_code} from "
                               f"{self.redact(_url(response))}{after} "
                               f"({self.redact(_detail(response))})")

    def close(self) -> None:
        self.session.close()


def _image_problem(response: requests.Response) -> str | None:
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if not kind.startswith("image/"):
        return f"not an image (Content-Type {kind or 'missing'})"
    try:
        checked_image(response.content, "body")
    except DataError as exc:
        return str(exc).removeprefix("body: ")
    return None


def _connection_problem(exc: Exception) -> str:
    """The innermost reason of a requests error, in one line (no pool or object noise)."""
    text = str(exc)
    for marker in ("IncompleteRead", "Connection broken", "Connection refused",
                   "Connection reset", "timed out", "Name or service not known"):
        if marker in text:
            return f"{type(exc).__name__} ({marker})"
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


def _url(response: requests.Response) -> str:
    return response.url.split("?", 1)[0]


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text[:200]
        return text if not text.lstrip().startswith("<") else "an HTML page"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(body.get("error_message", body))[:200] if isinstance(body, dict) else str(body)
