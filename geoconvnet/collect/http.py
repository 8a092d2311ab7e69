"""HTTP for the API sources: retries with backoff on rate limits and server errors
(urllib3's Retry, honouring Retry-After up to ``max_wait``), one clear error for refused
credentials, and secrets (keys, tokens) kept out of every message and log line."""

from __future__ import annotations

import logging
import re

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from ..utils.errors import GeoconvnetError

RETRY_STATUS = (429, 500, 502, 503, 504)
REFUSED_STATUS = (401, 403)
GONE_STATUS = (403, 404, 410)  # an image that expired or was deleted: skip it


class CollectError(GeoconvnetError):
    """A source cannot go on: a refused key, a blocked account, a quota, a site that
    changed, or a server that kept failing."""


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
    be served by another host)."""

    def __init__(self, source: str, secrets: tuple[str, ...] = (), retries: int = 5,
                 backoff: float = 1.0, max_wait: float = 120.0, timeout: float = 30.0,
                 auth: dict | None = None):
        self.source, self.secrets, self.timeout = source, tuple(s for s in secrets if s), timeout
        self.auth = auth or {}
        self.session = requests.Session()
        retry = Retry(total=retries, backoff_factor=backoff, status_forcelist=RETRY_STATUS,
                      allowed_methods=["GET"], respect_retry_after_header=True,
                      retry_after_max=max_wait, raise_on_status=False)
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
            raise CollectError(f"{self.source}: {self.redact(response.url)} did not answer "
                               "JSON; has the API changed?") from None

    def image(self, url: str, params: dict | None = None) -> bytes | None:
        """An image's bytes, or None when it is gone (expired link, deleted image)."""
        response = self._get(url, params, {})
        if response.status_code in GONE_STATUS:
            return None
        self._check(response)
        return response.content

    def _get(self, url: str, params: dict | None, headers: dict) -> requests.Response:
        try:
            return self.session.get(url, params=params, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise CollectError(f"{self.source}: request failed after retries: "
                               f"{self.redact(str(exc))}") from None

    def _check(self, response: requests.Response) -> None:
        if response.status_code >= 400:
            raise CollectError(f"{self.source}: HTTP {response.status_code} from "
                               f"{self.redact(response.url)} after retries "
                               f"({self.redact(_detail(response))})")

    def close(self) -> None:
        self.session.close()


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(body.get("error_message", body))[:200] if isinstance(body, dict) else str(body)
