"""HTTP for the API sources: retries with backoff on rate limits and server errors
(urllib3's Retry, honouring Retry-After), one clear error for a refused key, and secrets
(keys, tokens) kept out of every message."""

from __future__ import annotations

import re

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from ..utils.errors import GeoconvnetError

RETRY_STATUS = (429, 500, 502, 503, 504)
REFUSED_STATUS = (401, 403)


class CollectError(GeoconvnetError):
    """A source cannot go on: a refused key, a blocked account, a quota, a site that
    changed, or a server that kept failing."""


class Client:
    """A ``requests`` session that retries and never shows ``secrets`` in an error."""

    def __init__(self, source: str, secrets: tuple[str, ...] = (), retries: int = 5,
                 backoff: float = 1.0, timeout: float = 30.0, headers: dict | None = None):
        self.source, self.secrets, self.timeout = source, tuple(s for s in secrets if s), timeout
        self.session = requests.Session()
        retry = Retry(total=retries, backoff_factor=backoff, status_forcelist=RETRY_STATUS,
                      allowed_methods=["GET"], respect_retry_after_header=True,
                      raise_on_status=False)
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.headers.update(headers or {})

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return re.sub(r"(?i)((?:key|token|access_token|signature)=)[^&\s]+", r"\1***", text)

    def get(self, url: str, params: dict | None = None) -> requests.Response:
        try:
            response = self.session.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise CollectError(f"{self.source}: request failed after retries: "
                               f"{self.redact(str(exc))}") from None
        if response.status_code in REFUSED_STATUS:
            raise CollectError(f"{self.source}: the server refused the credentials (HTTP "
                               f"{response.status_code}: {self.redact(_detail(response))}); "
                               "check the key or token, and that the account may use this API")
        if response.status_code >= 400:
            raise CollectError(f"{self.source}: HTTP {response.status_code} from "
                               f"{self.redact(response.url)} after retries "
                               f"({self.redact(_detail(response))})")
        return response

    def json(self, url: str, params: dict | None = None) -> dict:
        response = self.get(url, params)
        try:
            return response.json()
        except ValueError:
            raise CollectError(f"{self.source}: {self.redact(response.url)} did not answer "
                               "JSON; has the API changed?") from None


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(body.get("error_message", body))[:200] if isinstance(body, dict) else str(body)
