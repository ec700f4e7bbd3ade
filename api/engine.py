"""The one place the service calls the engine (``router``): travel times for the circle rule.

The dispatch loop will also live behind this module: rows in, the engine's arrays, plans back to
rows. ``router`` never imports the service.
"""

from __future__ import annotations

from router.scenario import TravelRules
from router.travel import travel_s

# DESIGN.md, "Travel and timing rules": the default detour and walking speed.
TRAVEL_RULES = TravelRules()


def walk_s(from_lat: float, from_lon: float, to_lat: float, to_lon: float) -> int:
    """Walking time in whole seconds between two points, by DESIGN's distance rule."""
    return travel_s(
        from_lat, from_lon, to_lat, to_lon, TRAVEL_RULES.detour, TRAVEL_RULES.speed_mps["walk"]
    )


def warm_up() -> None:
    """Compile (or load from cache) the travel kernels before the first request needs them."""
    walk_s(0.0, 0.0, 0.0, 0.001)
