"""Errors that end a command with a message for the user (no traceback)."""


class GeoconvnetError(Exception):
    """A problem the user can fix; the message names the file or value and what to do."""


class DataError(GeoconvnetError):
    """The dataset layout or a file in it is unusable."""


class ImageTooLargeError(DataError):
    """An image with more pixels than allowed (a possible decompression bomb)."""


class CheckpointError(GeoconvnetError):
    """A checkpoint cannot be loaded safely or does not describe a model."""


class WeightsUnavailableError(GeoconvnetError):
    """Pretrained weights could not be obtained (offline, missing file)."""


class ConfigError(GeoconvnetError):
    """A configuration value or file is invalid."""
