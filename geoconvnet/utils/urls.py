"""Database URLs as people may see them: never with a password.

A URL is parsed with SQLAlchemy's own parser (the one that opens it), so what counts as the
password here is what the database gets: ``postgresql://u:Pw/Secret@host/db`` has the
password ``Pw/Secret``. A URL with more than one ``@`` is ambiguous (SQLAlchemy would take
part of the password for the host name): :func:`check_storage_url` refuses it, and
:func:`shown_url` hides everything up to the last ``@``.
"""

from __future__ import annotations

import re

from .errors import ConfigError

# Query parameters that carry a secret (psycopg / libpq spellings and common variants).
SECRET_PARAMS = re.compile(r"(?i)([?&](?:password|passwd|pwd|secret|token|sslpassword|"
                           r"api_?key)=)[^&]*")


def shown_url(url: str) -> str:
    """``url`` with its password (in the user part or a query parameter) shown as ``***``."""
    from sqlalchemy.engine import make_url  # lazy: only commands with a database need it
    from sqlalchemy.exc import ArgumentError

    if url.count("@") > 1:
        return _hide_up_to_last_at(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        head, sep, _ = url.partition("://")
        return f"{head}://***" if sep and "@" in url else "***"
    return SECRET_PARAMS.sub(r"\1***", parsed.render_as_string(hide_password=True))


def check_storage_url(url: str, option: str = "--storage") -> None:
    """One line (showing no secret) for a URL the database library would misread."""
    if url.count("@") > 1:
        raise ConfigError(f"{option} {shown_url(url)}: more than one '@' in the URL; write an "
                          "'@' inside the user name or password as %40 (and '/' as %2F, "
                          "':' as %3A, '%' as %25, '#' as %23)")


def _hide_up_to_last_at(url: str) -> str:
    head, sep, rest = url.partition("://")
    credentials, _, tail = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return SECRET_PARAMS.sub(r"\1***", f"{head}{sep}{user}:***@{tail}")


def scrubbed(text: str, url: str) -> str:
    """``text`` (a driver's error message, say) without ``url``'s password in any form."""
    from urllib.parse import quote, unquote

    from sqlalchemy.engine import make_url

    secrets = set()
    try:
        secrets.add(make_url(url).password or "")
    except Exception:  # noqa: BLE001 - unparseable: fall back to the raw text below
        pass
    raw = url.partition("://")[2].rpartition("@")[0].partition(":")[2]
    secrets |= {raw, unquote(raw), quote(unquote(raw), safe="")}
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
