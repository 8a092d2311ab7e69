"""Class names -> ISO codes for the report's world map (the shapes themselves come from
:func:`geoconvnet.data.countries.shapes_for_map`)."""

from __future__ import annotations

from ..data.countries import iso3


def map_names(names: list[str]) -> tuple[dict[str, str], list[str]]:
    """({class name: ISO-3}, [unmapped names])."""
    mapped, unmapped = {}, []
    for name in names:
        code = iso3(name)
        if code is None:
            unmapped.append(name)
        else:
            mapped[name] = code
    return mapped, unmapped
