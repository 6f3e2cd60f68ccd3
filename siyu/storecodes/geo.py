"""Geometry of the store locator (门店活码), pure functions without the database (opening hours: siyu.core.hours).

Distances are great-circle (haversine) on a sphere of the Earth's mean radius: over the few kilometres a
locator searches, the sphere is within 0.5 % of the ellipsoid, far below the accuracy of a phone's position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from siyu.core.errors import ValidationFailed

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)
# The bounding box is only a prefilter; this pad (about 1 m) keeps stores exactly on the radius inside it
# whatever the rounding of the 6-decimal columns.
_BOX_PAD_DEG = 1e-5


@dataclass(frozen=True)
class Point:
    latitude: float
    longitude: float


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in metres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lng2 - lng1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Box:
    """A latitude/longitude rectangle; `lng_min > lng_max` never happens (boxes across ±180° are split)."""

    lat_min: float
    lat_max: float
    lng_min: float
    lng_max: float


def bounding_boxes(point: Point, radius_m: float) -> list[Box]:
    """Rectangles that together contain every point within `radius_m` of `point` (one, or two across ±180°).

    The longitude half-width is asin(sin δ / cos φ), the exact extent of a spherical cap of angular radius δ;
    a cap reaching a pole spans every longitude.
    """
    delta = radius_m / EARTH_RADIUS_M
    dlat = math.degrees(delta) + _BOX_PAD_DEG
    lat_min, lat_max = max(-90.0, point.latitude - dlat), min(90.0, point.latitude + dlat)
    if lat_min <= -90.0 or lat_max >= 90.0 or delta >= math.pi / 2:
        return [Box(lat_min, lat_max, -180.0, 180.0)]
    ratio = math.sin(delta) / math.cos(math.radians(point.latitude))
    if ratio >= 1.0:
        return [Box(lat_min, lat_max, -180.0, 180.0)]
    dlng = math.degrees(math.asin(ratio)) + _BOX_PAD_DEG
    lng_min, lng_max = point.longitude - dlng, point.longitude + dlng
    if lng_min < -180.0:
        return [Box(lat_min, lat_max, lng_min + 360.0, 180.0), Box(lat_min, lat_max, -180.0, lng_max)]
    if lng_max > 180.0:
        return [Box(lat_min, lat_max, lng_min, 180.0), Box(lat_min, lat_max, -180.0, lng_max - 360.0)]
    return [Box(lat_min, lat_max, lng_min, lng_max)]


# --- input --------------------------------------------------------------------------------------------------


def parse_coordinate(value: object, *, field: str, limit: int) -> float:
    """A latitude (limit 90) or longitude (limit 180) from text or a number; refuse anything else by name."""
    if isinstance(value, bool) or value is None:
        raise ValidationFailed(f"{field} is required", field=field)
    text = str(value).strip()
    if not text:
        raise ValidationFailed(f"{field} is required", field=field)
    if len(text) > 32:  # no real coordinate is longer; refuse before parsing a megabyte of digits
        raise ValidationFailed(f"{field} must be a number of degrees", field=field)
    try:
        number = float(Decimal(text))
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"{field} must be a number of degrees, got {text[:20]!r}", field=field) from None
    if not math.isfinite(number):
        raise ValidationFailed(f"{field} must be a finite number of degrees", field=field)
    if not -limit <= number <= limit:
        raise ValidationFailed(f"{field} must be between -{limit} and {limit} degrees", field=field)
    return number


def parse_point(latitude: object, longitude: object) -> Point:
    return Point(parse_coordinate(latitude, field="lat", limit=90), parse_coordinate(longitude, field="lng", limit=180))


def to_decimal(value: float) -> Decimal:
    """Degrees as the 6-decimal column stores them (about 0.1 m)."""
    return Decimal(f"{value:.6f}")
