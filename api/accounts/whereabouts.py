"""Where an account is, coarsely: an H3 cell of about 36 km², never the point it came from.

A neighbourhood show (``Audience.NEIGHBORHOOD``) admits the accounts whose cell is the seller's
or one of the cells around it (:data:`NEIGHBOUR_RINGS`): within roughly 4-11 km of the seller,
depending on where in their cells both are.
"""

from __future__ import annotations

import h3

HOME_RESOLUTION = 6  # average hexagon: 36 km², 3.7 km a side
NEIGHBOUR_RINGS = 1  # the seller's cell and the six that touch it


def home_cell(latitude: float, longitude: float) -> str:
    """The cell a point lies in; the point itself is not kept anywhere."""
    return str(h3.latlng_to_cell(latitude, longitude, HOME_RESOLUTION))


def neighbourhood(cell: str) -> list[str]:
    """The cells whose accounts are neighbours of one in ``cell`` (``cell`` included)."""
    return sorted(h3.grid_disk(cell, NEIGHBOUR_RINGS))
