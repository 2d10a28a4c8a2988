"""Point in polygon in ingestion.geo.linking: edges, vertices, holes, outside, file order.

The rule (ingestion.geo.linking's module docstring): a point goes to the smallest GEOID among the
polygons whose closure holds it, whatever the order of the boundary file's rows.
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from ingestion.geo.linking import link_addresses

A, B, C, D = "420010001001", "420010001002", "420010001003", "420010001004"


def polygons(shapes: dict[str, shapely.Geometry]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"geoid": list(shapes)}, geometry=list(shapes.values()), crs=4269)


def link(frame: gpd.GeoDataFrame, points: list[tuple[float, float]], *,
         year: int = 2020) -> pd.DataFrame:
    """Link one period per (longitude, latitude); rows come back in point order."""
    history = pd.DataFrame({
        "patient_id": [f"p{i:04d}" for i in range(len(points))],
        "valid_from": "2021-01-01",
        "longitude": [p[0] for p in points],
        "latitude": [p[1] for p in points],
    })
    return link_addresses(history, {year: frame})


def geoids(frame: gpd.GeoDataFrame, points: list[tuple[float, float]]) -> list[str | None]:
    got = link(frame, points)["block_group_geoid_2020"]
    return [None if pd.isna(g) else g for g in got]


# Two triangles sharing the diagonal from (-75, 39) to (-74, 40).
LOWER = shapely.Polygon([(-75, 39), (-74, 39), (-74, 40)])
UPPER = shapely.Polygon([(-75, 39), (-74, 40), (-75, 40)])


@pytest.mark.parametrize(("lower", "upper"), [(A, B), (B, A)])
@pytest.mark.parametrize("reverse", [False, True])
def test_point_on_a_shared_slanted_edge_gets_the_smallest_geoid(lower, upper, reverse):
    frame = polygons({lower: LOWER, upper: UPPER})
    if reverse:
        frame = frame.iloc[::-1]
    on_edge = (-74.75, 39.25)  # exactly on the diagonal, not a vertex
    assert geoids(frame, [on_edge, (-74.2, 39.5), (-74.8, 39.5)]) == [A, lower, upper]


# Three polygons meeting at (-74.5, 39.5): the left half and the two right quarters.
THREE = [shapely.box(-75, 39, -74.5, 40), shapely.box(-74.5, 39.5, -74, 40),
         shapely.box(-74.5, 39, -74, 39.5)]
# Four squares meeting at (-74, 40).
FOUR = [shapely.box(-75, 39, -74, 40), shapely.box(-74, 39, -73, 40),
        shapely.box(-75, 40, -74, 41), shapely.box(-74, 40, -73, 41)]


@pytest.mark.parametrize(("shapes", "vertex"), [(THREE, (-74.5, 39.5)), (FOUR, (-74.0, 40.0))])
def test_point_on_a_vertex_of_three_or_four_polygons_gets_the_smallest_geoid(shapes, vertex):
    for names in itertools.permutations([A, B, C, D][:len(shapes)]):
        frame = polygons(dict(zip(names, shapes, strict=True)))
        assert geoids(frame, [vertex]) == [A], names
        assert geoids(frame.iloc[::-1], [vertex]) == [A], names


RING = shapely.box(-75, 39, -74, 40)
HOLE = shapely.box(-74.75, 39.25, -74.25, 39.75)
DONUT = RING.difference(HOLE)


def test_point_in_an_empty_hole_is_outside_the_boundaries():
    got = link(polygons({A: DONUT}), [(-74.5, 39.5), (-74.9, 39.5)])
    assert got["block_group_geoid_2020"].isna().tolist() == [True, False]
    first = got.iloc[0]
    assert (first["link_missing"], first["precision"], first["link_method"]) == (
        "outside_boundaries", "none", "none")


@pytest.mark.parametrize(("donut", "island"), [(A, B), (B, A)])
def test_point_in_a_hole_goes_to_the_island_and_the_hole_edge_to_the_smallest(donut, island):
    frame = polygons({donut: DONUT, island: HOLE})
    in_hole, on_hole_edge, on_hole_corner = (-74.5, 39.5), (-74.75, 39.5), (-74.25, 39.75)
    assert geoids(frame, [in_hole, on_hole_edge, on_hole_corner]) == [island, A, A]


def test_point_outside_every_polygon_has_a_typed_missing_reason():
    frame = polygons({A: FOUR[0], B: FOUR[1]})
    got = link(frame, [(-60.0, 45.0), (-74.5, 39.5)])
    outside, inside = got.iloc[0], got.iloc[1]
    assert outside.filter(like="_geoid_").isna().all()
    assert (outside["link_missing"], outside["precision"], outside["link_method"]) == (
        "outside_boundaries", "none", "none")
    assert pd.isna(inside["link_missing"]) and inside["block_group_geoid_2020"] == A


def test_point_on_the_outer_edge_of_the_boundaries_is_inside():
    assert geoids(polygons({B: FOUR[0]}), [(-75.0, 39.5), (-75.0, 39.0)]) == [B, B]


def test_multipolygon_parts_share_edges_like_polygons():
    parts = shapely.MultiPolygon([shapely.box(-75, 39, -74, 40), shapely.box(-72, 39, -71, 40)])
    frame = polygons({B: parts, A: shapely.box(-71, 39, -70, 40)})
    assert geoids(frame, [(-71.0, 39.5), (-71.5, 39.5), (-74.5, 39.5)]) == [A, B, B]


def _voronoi_cells(n: int, seed: int) -> gpd.GeoDataFrame:
    """Voronoi cells of random sites clipped to a box: polygons sharing edges and vertices."""
    rng = np.random.default_rng(seed)
    box = shapely.box(-75, 39, -74, 40)
    sites = shapely.multipoints(rng.uniform((-75, 39), (-74, 40), (n, 2)))
    cells = shapely.get_parts(shapely.voronoi_polygons(sites, extend_to=box))
    cells = shapely.intersection(cells, box)
    names = [f"4200100{i:05d}" for i in rng.permutation(len(cells))]
    return polygons(dict(zip(names, cells, strict=True)))


def _brute_force(frame: gpd.GeoDataFrame, points: list[tuple[float, float]]) -> list[str | None]:
    """The rule itself: the smallest GEOID of every polygon the point intersects."""
    located = shapely.points(np.array(points))
    hits = shapely.intersects(np.asarray(frame.geometry.array)[:, None], located[None, :])
    names = frame["geoid"].to_numpy(dtype=object)
    return [min(names[hits[:, j]]) if hits[:, j].any() else None for j in range(len(points))]


def test_agrees_with_the_rule_on_every_vertex_and_random_points_in_any_row_order():
    frame = _voronoi_cells(60, seed=3)
    vertices = np.unique(shapely.get_coordinates(frame.geometry.array), axis=0)
    rng = np.random.default_rng(4)
    inside = rng.uniform((-75.2, 38.8), (-73.8, 40.2), (400, 2))
    points = [tuple(p) for p in np.r_[vertices, inside]]
    expected = _brute_force(frame, points)
    assert sum(e is None for e in expected) > 0  # some points are outside the box
    for order in (np.arange(len(frame)), np.arange(len(frame))[::-1],
                  *(rng.permutation(len(frame)) for _ in range(3))):
        assert geoids(frame.iloc[order], points) == expected


def test_result_does_not_depend_on_row_order_of_either_vintage():
    frame = polygons(dict(zip([D, C, B, A], FOUR, strict=True)))
    points = [(-74.0, 40.0), (-74.0, 39.5), (-74.5, 40.0), (-73.5, 40.5), (-80.0, 40.0)]
    history = pd.DataFrame({"patient_id": [f"p{i}" for i in range(len(points))],
                            "valid_from": "2021-01-01",
                            "longitude": [p[0] for p in points],
                            "latitude": [p[1] for p in points]})
    first = link_addresses(history, {2010: frame, 2020: frame.iloc[[2, 0, 3, 1]]})
    again = link_addresses(history, {2010: frame.iloc[::-1], 2020: frame})
    pd.testing.assert_frame_equal(first, again)
    assert first["block_group_geoid_2010"].tolist()[:4] == [A, C, B, A]


@pytest.mark.parametrize("prepared_before", [False, True])
def test_many_points_per_polygon_same_rule_and_polygons_left_as_they_were(prepared_before):
    # About 60 points per cell: the polygons are prepared for the test, then released.
    frame = _voronoi_cells(30, seed=5)
    if prepared_before:
        shapely.prepare(frame.geometry.array)
    vertices = np.unique(shapely.get_coordinates(frame.geometry.array), axis=0)
    inside = np.random.default_rng(6).uniform((-75.1, 38.9), (-73.9, 40.1), (2000, 2))
    points = [tuple(p) for p in np.r_[vertices, inside]]
    assert geoids(frame, points) == _brute_force(frame, points)
    assert (shapely.is_prepared(frame.geometry.array) == prepared_before).all()


def test_the_strtree_fallback_gives_the_same_answers(monkeypatch):
    # Boxes far larger than the grid's cells fall back to an STRtree over the points.
    from ingestion.geo import linking

    frame = _voronoi_cells(40, seed=7)
    rng = np.random.default_rng(8)
    vertices = np.unique(shapely.get_coordinates(frame.geometry.array), axis=0)
    points = [tuple(p) for p in np.r_[vertices, rng.uniform((-75.2, 38.8), (-73.8, 40.2),
                                                            (500, 2))]]
    by_grid = geoids(frame, points)
    monkeypatch.setattr(linking._PointGrid, "candidates", lambda self, bounds, most=None: None)
    assert geoids(frame, points) == by_grid == _brute_force(frame, points)


def test_a_polygon_much_larger_than_the_others_spans_many_grid_columns():
    small = {f"4200100{i:05d}": shapely.box(-75 + i / 100, 39, -75 + (i + 1) / 100, 39.01)
             for i in range(50)}
    frame = polygons({**small, "420019999999": shapely.box(-80, 30, -60, 38.9)})
    points = [(-75.005, 39.005), (-70.0, 35.0), (-60.0, 38.9), (-80.0, 30.0), (-59.9, 35.0)]
    assert geoids(frame, points) == _brute_force(frame, points)
    assert geoids(frame, points)[1:] == ["420019999999"] * 3 + [None]
