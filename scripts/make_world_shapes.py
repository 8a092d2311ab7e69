"""Build geoconvnet/resources/world_110m.json (country outlines for the report's map).

Source: Natural Earth 1:110m admin-0 countries (public domain), in the copy that the
`pyogrio` wheel ships (pyogrio/tests/fixtures/naturalearth_lowres). Run once by hand:

    pip install pyshp
    python scripts/make_world_shapes.py path/to/naturalearth_lowres.shp

Output: {ISO-3166 alpha-3: [ring, ...]} with rings as [[lon, lat], ...] rounded to 0.1 degree.
"""

import json
import sys
from pathlib import Path

import shapefile  # pyshp

# Natural Earth marks a few countries' ISO code as -99; these are their real codes.
MISSING_ISO = {"France": "FRA", "Norway": "NOR", "Kosovo": "XKX", "N. Cyprus": "CYN",
               "Somaliland": "SOL"}


def rings_of(shape) -> list[list[list[float]]]:
    parts = list(shape.parts) + [len(shape.points)]
    rings = []
    for start, end in zip(parts, parts[1:]):
        ring = []
        for lon, lat in shape.points[start:end]:
            point = [round(lon, 1), round(lat, 1)]
            if not ring or ring[-1] != point:
                ring.append(point)
        if len(ring) >= 4:
            rings.append(ring)
    return rings


def main(source: str) -> None:
    reader = shapefile.Reader(source)
    fields = [f[0] for f in reader.fields[1:]]
    shapes: dict[str, list] = {}
    for record, shape in zip(reader.records(), reader.shapes()):
        row = dict(zip(fields, record))
        code = row["iso_a3"] if row["iso_a3"] != "-99" else MISSING_ISO.get(row["name"])
        if code:
            shapes.setdefault(code, []).extend(rings_of(shape))
    out = Path(__file__).resolve().parents[1] / "geoconvnet" / "resources" / "world_110m.json"
    out.write_text(json.dumps(shapes, separators=(",", ":"), sort_keys=True))
    print(f"{len(shapes)} countries -> {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main(sys.argv[1])
