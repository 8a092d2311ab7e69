"""Images per minute of `geoconvnet collect` for each source against local stand-ins of the
services (the test suite's, on 127.0.0.1): the collector's own overhead, with no network
and no rate limiting by a real service. The API stand-ins answer instantly (with their 429s,
5xx and empty areas, retried with no backoff); the GeoGuessr imitation loads each round in
0.15-0.45 s and is driven by a real headless Chromium (settle 0.05 s, no delay).

    python benchmarks/collect_speed.py [--per-country 10] [--work DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _common import record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "collect"))
from fake_geoguessr import FakeGeoGuessr  # noqa: E402
from fakes import GOOD_KEY, GOOD_TOKEN, FakeMapillary, FakeStreetView  # noqa: E402

from geoconvnet.collect.sources import collect_from  # noqa: E402

COUNTRIES = ["Norway", "Chile", "Japan"]


def source_options(source: str, service, work: Path) -> dict:
    if source == "streetview":
        return {"key": GOOD_KEY, "api_url": service.url, "backoff": 0}
    if source == "mapillary":
        return {"token": GOOD_TOKEN, "api_url": service.url, "backoff": 0}
    return {"site_url": service.url, "browser": shutil.which("chromium"), "settle": 0.05,
            "round_timeout": 5, "storage_state": service.storage_state(work / "state.json")}


def run(source: str, service, work: Path, per_country: int) -> tuple[int, float]:
    result = collect_from(source, work / source, COUNTRIES, per_country, delay=0,
                          **source_options(source, service, work))
    return result.collected, result.images_per_minute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-country", type=int, default=10)
    parser.add_argument("--work")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="geoconvnet-bench-"))
    table = ["| source | images | images/min |", "|---|---:|---:|"]
    services = {"streetview": FakeStreetView, "mapillary": FakeMapillary,
                "geoguessr": lambda: FakeGeoGuessr(hang_game=0)}
    for source, make in services.items():
        if source == "geoguessr" and not shutil.which("chromium"):
            table.append("| geoguessr | (no chromium here) | |")
            continue
        service = make()
        try:
            shutil.rmtree(work / source, ignore_errors=True)
            images, rate = run(source, service, work, args.per_country)
        finally:
            service.close()
        table.append(f"| {source} | {images} | {rate:,.0f} |")
    record("collect_speed.py: collector images/min against local stand-ins", table,
           f"{len(COUNTRIES)} countries x {args.per_country} images each, one run per source. "
           "Street View images 640x360 JPEG, Mapillary thumbnails 160x90 JPEG (the stand-ins' "
           "sizes), GeoGuessr captures 1600x900 PNG. Real services add their own latency, "
           "rate limits and, for GeoGuessr, round loading times and --delay.")


if __name__ == "__main__":
    main()
