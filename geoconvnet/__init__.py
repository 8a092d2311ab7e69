"""geoconvnet: guess the country of a street-view screenshot."""

__version__ = "0.1.0"

from .errors import GeoconvnetError  # noqa: E402

__all__ = ["GeoconvnetError", "__version__"]
