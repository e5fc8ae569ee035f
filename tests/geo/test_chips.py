"""Chip plan: window maths (hypothesis), zones, and the assignment of parcels to chips."""

from __future__ import annotations

import geopandas as gpd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from geo.chips import CHIP_PX, HALO_PX, RESOLUTION_M, plan_chips, sentinelhub_units, utm_epsg
from geo.errors import ParcelGeometryError

SIDE = CHIP_PX * RESOLUTION_M


def _book(polys: list[Polygon], crs: str = "EPSG:32631") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"parcel_id": [f"P{i}" for i in range(len(polys))]}, geometry=polys, crs=crs
    )


parcel = st.builds(
    lambda x, y, w, h: box(x, y, x + w, y + h),
    st.floats(400_000, 460_000),
    st.floats(5_000_000, 5_060_000),
    st.floats(5, 1_500),  # up to a parcel 1.5 km across: crosses chip edges often
    st.floats(5, 1_500),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(parcel, min_size=1, max_size=25))
def test_every_parcel_in_exactly_one_chip_whose_window_covers_it(polys: list[Polygon]) -> None:
    book = _book(polys)
    plan = plan_chips(book)
    assert plan.assignment.notna().all() and len(plan.assignment) == len(book)
    assert sum(plan.counts()) == len(book)  # exactly one chip each
    assert all(n > 0 for n in plan.counts())  # no empty chip kept
    by_id = {c.chip_id: c for c in plan.chips}
    for pid, geom, point in zip(
        book["parcel_id"], book.geometry, book.geometry.representative_point(), strict=True
    ):
        chip = by_id[plan.assignment[pid]]
        core, win = chip.core, chip.window
        assert core.left <= point.x < core.right and core.bottom <= point.y < core.top
        minx, miny, maxx, maxy = geom.bounds
        eps = 1e-6  # edges within a micrometre of a grid line snap to it
        assert win.left <= minx + eps and win.bottom <= miny + eps
        assert win.right >= maxx - eps and win.top >= maxy - eps
    for chip in plan.chips:
        w = chip.window
        for edge in (w.left, w.bottom, w.right, w.top):  # on the 10 m grid
            assert abs(edge / RESOLUTION_M - round(edge / RESOLUTION_M)) < 1e-6
        # the core sits on the zone's grid, independent of the book; the halo is all round
        assert chip.core.left == chip.col * SIDE and chip.core.bottom == chip.row * SIDE
        halo = HALO_PX * RESOLUTION_M
        mine = book[book["parcel_id"].map(plan.assignment) == chip.chip_id].total_bounds
        # the window is the chip's parcels plus the halo, no more than a pixel beyond
        assert mine[0] - halo - RESOLUTION_M < w.left <= mine[0] - halo + 1e-6
        assert mine[3] + halo - 1e-6 <= w.top < mine[3] + halo + RESOLUTION_M
        assert chip.shape[0] * chip.shape[1] == chip.pixels


def test_grid_does_not_depend_on_the_book() -> None:
    a = box(431_000, 5_021_000, 431_200, 5_021_300)
    alone = plan_chips(_book([a])).chips[0]
    with_far = plan_chips(_book([a, box(470_000, 5_090_000, 470_100, 5_090_100)]))
    assert alone in with_far.chips
    assert len(with_far) == 2
    assert alone.shape == (30 + 2 * HALO_PX, 20 + 2 * HALO_PX)  # 200 x 300 m plus the halo
    assert with_far.window_pixels < with_far.bbox_pixels


def test_a_book_over_two_utm_zones_gets_chips_in_each_zone() -> None:
    # two parcels in WGS 84 either side of 6 E (the edge of zones 31 and 32)
    west = box(5.95, 45.0, 5.951, 45.001)
    east = box(6.05, 45.0, 6.051, 45.001)
    plan = plan_chips(_book([west, east], crs="EPSG:4326"))
    assert sorted(c.epsg for c in plan.chips) == [32631, 32632]
    for chip in plan.chips:
        mine = plan.parcels_of(_book([west, east], crs="EPSG:4326"), chip)
        assert len(mine) == 1 and str(mine.crs) == chip.crs
        minx, miny, maxx, maxy = mine.total_bounds
        assert chip.window.left <= minx and chip.window.right >= maxx


def test_utm_epsg_and_bad_input() -> None:
    assert utm_epsg(2.35, 48.85) == 32631
    assert utm_epsg(-58.4, -34.6) == 32721
    with pytest.raises(ParcelGeometryError, match="longitude"):
        utm_epsg(float("nan"), 10.0)
    with pytest.raises(ParcelGeometryError, match="no CRS"):
        plan_chips(gpd.GeoDataFrame({"parcel_id": ["a"]}, geometry=[box(0, 0, 1, 1)]))


def test_sentinelhub_units_follow_the_area_and_band_rule() -> None:
    plan = plan_chips(_book([box(431_000, 5_021_000, 431_200, 5_021_300)]))
    # one 84 x 94 px window, 12 bands: 84 * 94 / 512² * 12 / 3 per scene
    assert sentinelhub_units(plan, 10) == pytest.approx(10 * 84 * 94 / 512**2 * 4)
