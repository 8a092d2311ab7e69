"""The API's responses as pydantic models: they validate what the server sends and describe
it in the OpenAPI document (``/openapi.json``, browsable at ``/docs``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Error(BaseModel):
    detail: str = Field(description="what was wrong, naming the file or value, and the fix")


class Guess(BaseModel):
    country: str = Field(description="class name")
    name: str = Field(description="the country as people write it, e.g. 'South Africa'")
    code: str | None = Field(description="ISO 3166 alpha-3 code; null when not a country")
    probability: float = Field(description="calibrated when the model has a temperature")


class Pin(BaseModel):
    lat: float
    lon: float
    expected_score: float = Field(description="expected GeoGuessr points, 5000*exp(-d/1492.7 km)")


class Pins(BaseModel):
    suggested: Pin = Field(description="the point with the highest expected score")
    naive: Pin = Field(description="the centre of the most likely country, or with a location "
                                   "head the centre of the most likely cell")
    source: str = Field("country", description="what the suggested pin comes from: 'geocell' "
                        "(the location head) or 'country' (the countries' land)")
    country: Pin | None = Field(None, description="with a location head: the pin the countries "
                                "alone give, for comparison; null otherwise (or when the "
                                "classes are not countries)")


class Cell(BaseModel):
    lat: float = Field(description="the cell's centre (one of its training places)")
    lon: float
    probability: float = Field(description="the location head's probability of the cell")
    country: str = Field(description="the class name of the cell's country")
    radius_km: float = Field(description="how far the cell reaches: 80% of its training "
                             "places lie within it of the centre (at least 10 km)")


class LocationHead(BaseModel):
    cells: int = Field(description="the geocells the location head chooses among")


class ImageInfo(BaseModel):
    filename: str
    width: int
    height: int


class PredictResponse(BaseModel):
    image: ImageInfo
    view: str = Field(description="the eval view the model looked through")
    calibrated: bool
    top: list[Guess]
    probabilities: list[Guess] = Field(description="every class, most likely first")
    pin: Pins | None = Field(description="null when the classes are not countries and the "
                             "model has no location head")
    cells: list[Cell] | None = Field(None, description="with a location head: the likely cells "
                                     "(probability >= 0.01, the top one always, at most 32), "
                                     "most likely first; null without one")
    timings_ms: dict[str, float]


class Health(BaseModel):
    status: str
    model: str
    in_flight: int = Field(description="requests waiting for or using the model")
    waiting: int = Field(description="requests waiting for a model thread")
    max_queue: int = Field(description="requests that may wait; more get 503 (serve --max-queue)")
    answered: int = Field(description="model calls (predictions, heat maps) since the start")
    refused_busy: int = Field(description="requests refused with 503 since the start")
    uptime_s: float


class ModelInfo(BaseModel):
    name: str
    arch: str
    format: str = Field(description="pytorch or onnx")
    pool: str = Field(description="the backbone's spatial pool: avg, gem, max, avgmax or attn")
    view_pool: str = Field(description="how the crops of a view are combined: mean, lse or attn")
    class_names: list[str]
    codes: dict[str, str | None]
    names: dict[str, str] = Field(description="class name -> the country as people write it")
    preprocessing: dict
    temperature: float
    calibrated: bool
    metrics: dict
    geoconvnet_version: str | None
    heat_maps: bool = Field(description="whether POST /api/heatmap works (not for ONNX)")
    pin: bool
    location_head: LocationHead | None = Field(None, description="the location head (geocells), "
                                               "null for a country-only model")
    device: str
