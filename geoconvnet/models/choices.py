"""The pooling choices as plain data (no torch), so the CLI and the config can check a
``--pool`` or ``--view-pool`` before torch is imported; :mod:`.pooling` builds them."""

from __future__ import annotations

from ..utils.errors import ConfigError

POOLS = ("avg", "gem", "max", "avgmax", "attn")
VIEW_POOLS = ("mean", "lse", "attn")


def check_pool(kind: str) -> None:
    if kind not in POOLS:
        raise ConfigError(f"unknown --pool {kind!r}; choose one of: {', '.join(POOLS)}")


def check_view_pool(kind: str) -> None:
    if kind not in VIEW_POOLS:
        raise ConfigError(f"unknown --view-pool {kind!r}; choose one of: {', '.join(VIEW_POOLS)}")
