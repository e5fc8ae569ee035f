"""LocalArchiveSource and write_scene on tiny COGs written in each test."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.errors import ImageryError
from geo.sources.base import SCENE_BANDS, Bounds, SceneData, SceneRef, TileSource
from geo.sources.local import LocalArchiveSource, scene_file_name, write_scene

CRS = "EPSG:32631"
X0, Y0 = 500_000.0, 5_600_000.0


def make_scene(
    date: dt.date,
    shape: tuple[int, int] = (20, 30),
    *,
    x0: float = X0,
    y0: float = Y0,
    crs: str = CRS,
    seed: int = 0,
) -> SceneData:
    rng = np.random.default_rng(seed)
    h, w = shape
    return SceneData(
        scene_id=f"S2L2A_{date:%Y%m%d}",
        date=date,
        dn=rng.integers(1, 10_000, (10, h, w), dtype=np.uint16),
        scl=rng.integers(0, 12, (h, w), dtype=np.uint8),
        transform=Affine(10.0, 0.0, x0, 0.0, -10.0, y0),
        crs=crs,
    )


def archive(tmp_path: Path, scenes: list[SceneData]) -> LocalArchiveSource:
    for s in scenes:
        write_scene(tmp_path / "scenes" / scene_file_name(s.date), s)
    return LocalArchiveSource(tmp_path)


def full_bounds(scene: SceneData) -> Bounds:
    h, w = scene.shape
    t = scene.transform
    return Bounds(t.c, t.f - 10 * h, t.c + 10 * w, t.f, scene.crs)


def test_write_scene_is_a_cog_with_bands_tags_and_nodata(tmp_path: Path) -> None:
    scene = make_scene(dt.date(2026, 3, 5), (40, 50))
    path = write_scene(tmp_path / "scenes" / "S2L2A_20260305.tif", scene)
    with rasterio.open(path) as src:
        assert src.count == 11
        assert src.descriptions == SCENE_BANDS
        assert src.dtypes == ("uint16",) * 11
        assert src.nodata == 0
        assert src.tags()["ACQUISITION_DATE"] == "2026-03-05"
        assert src.crs.to_epsg() == 32631
        assert src.transform == scene.transform
        structure = src.tags(ns="IMAGE_STRUCTURE")
        assert structure["COMPRESSION"] == "ZSTD"
        assert structure.get("LAYOUT") == "COG"
        assert structure.get("PREDICTOR") == "2"
        assert src.profile["tiled"]
        np.testing.assert_array_equal(src.read(range(1, 11)), scene.dn)
        np.testing.assert_array_equal(src.read(11), scene.scl)
    assert not list(path.parent.glob(".*")), "temporary file left behind"


def test_write_scene_writes_a_tiled_zstd_cog(tmp_path: Path) -> None:
    scene = make_scene(dt.date(2026, 3, 5), (520, 520))
    path = write_scene(tmp_path / "big.tif", scene)
    with rasterio.open(path) as src:
        assert src.compression is not None and src.compression.name.upper() == "ZSTD"
        assert src.block_shapes[0] == (512, 512), "internal tiles let readers fetch windows"
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        np.testing.assert_array_equal(src.read(1), scene.dn[0])


def test_write_scene_rejects_bad_shapes(tmp_path: Path) -> None:
    s = make_scene(dt.date(2026, 3, 5))
    bad = SceneData(s.scene_id, s.date, s.dn[:9], s.scl, s.transform, s.crs)
    with pytest.raises(ImageryError, match="expected dn"):
        write_scene(tmp_path / "x.tif", bad)


def test_source_is_a_tile_source(tmp_path: Path) -> None:
    src = LocalArchiveSource(tmp_path)
    assert isinstance(src, TileSource)
    assert src.name == "local"


def test_search_filters_dates_and_footprint_and_sorts(tmp_path: Path) -> None:
    dates = [dt.date(2026, 5, 1), dt.date(2026, 3, 1), dt.date(2026, 4, 1), dt.date(2025, 1, 1)]
    src = archive(tmp_path, [make_scene(d) for d in dates])
    far = make_scene(dt.date(2026, 3, 15), x0=X0 + 50_000)
    write_scene(tmp_path / "scenes" / scene_file_name(far.date), far)
    bounds = Bounds(X0 + 20, Y0 - 100, X0 + 120, Y0 - 20, CRS)
    refs = src.search(bounds, dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert [r.date for r in refs] == [dt.date(2026, 3, 1), dt.date(2026, 4, 1), dt.date(2026, 5, 1)]
    assert all(Path(r.href).is_file() for r in refs)
    far_bounds = Bounds(X0 + 50_010, Y0 - 50, X0 + 50_060, Y0 - 10, CRS)
    assert [r.date for r in src.search(far_bounds, dt.date(2026, 1, 1), dt.date(2026, 12, 31))] == [
        dt.date(2026, 3, 15)
    ]


def test_date_from_file_name_when_the_tag_is_missing(tmp_path: Path) -> None:
    scene = make_scene(dt.date(2026, 6, 11))
    path = tmp_path / "scenes" / "S2L2A_20260611.tif"
    path.parent.mkdir(parents=True)
    profile = dict(driver="GTiff", width=30, height=20, count=11, dtype="uint16", crs=CRS, nodata=0)
    with rasterio.open(path, "w", transform=scene.transform, **profile) as dst:
        dst.write(np.concatenate([scene.dn, scene.scl[None].astype(np.uint16)]))
    refs = LocalArchiveSource(tmp_path).search(
        full_bounds(scene), dt.date(2026, 1, 1), dt.date(2026, 12, 1)
    )
    assert [r.date for r in refs] == [dt.date(2026, 6, 11)]


def test_read_window_equals_the_slice(tmp_path: Path) -> None:
    scene = make_scene(dt.date(2026, 3, 5), (40, 50))
    src = archive(tmp_path, [scene])
    bounds = Bounds(X0 + 100, Y0 - 300, X0 + 250, Y0 - 50, CRS)  # cols 10..25, rows 5..30
    (ref,) = src.search(bounds, dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    out = src.read(ref, bounds)
    assert out.shape == (25, 15)
    np.testing.assert_array_equal(out.dn, scene.dn[:, 5:30, 10:25])
    np.testing.assert_array_equal(out.scl, scene.scl[5:30, 10:25])
    assert out.dn.dtype == np.uint16 and out.scl.dtype == np.uint8
    assert out.transform == Affine(10, 0, X0 + 100, 0, -10, Y0 - 50)
    assert out.crs == CRS and out.date == scene.date


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    col=st.integers(-15, 40),
    row=st.integers(-15, 30),
    width=st.integers(1, 25),
    height=st.integers(1, 25),
)
def test_read_window_maths_matches_a_padded_reference(
    tmp_path_factory: pytest.TempPathFactory, col: int, row: int, width: int, height: int
) -> None:
    root = tmp_path_factory.getbasetemp() / "window_archive"
    scene = make_scene(dt.date(2026, 3, 5), (20, 30), seed=7)
    if not (root / "scenes").exists():
        write_scene(root / "scenes" / scene_file_name(scene.date), scene)
    src = LocalArchiveSource(root)
    bounds = Bounds(
        X0 + 10 * col, Y0 - 10 * (row + height), X0 + 10 * (col + width), Y0 - 10 * row, CRS
    )
    ref = SceneRef("S2L2A_20260305", scene.date, str(root / "scenes" / "S2L2A_20260305.tif"))
    out = src.read(ref, bounds)
    pad = 60
    big = np.zeros((10, 20 + 2 * pad, 30 + 2 * pad), dtype=np.uint16)
    big[:, pad:-pad, pad:-pad] = scene.dn
    expected = big[:, row + pad : row + pad + height, col + pad : col + pad + width]
    np.testing.assert_array_equal(out.dn, expected)


def test_read_beyond_the_file_is_nodata(tmp_path: Path) -> None:
    scene = make_scene(dt.date(2026, 3, 5))
    src = archive(tmp_path, [scene])
    bounds = Bounds(X0 - 50, Y0 - 60, X0 + 50, Y0 + 40, CRS)
    (ref,) = src.search(bounds, dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    out = src.read(ref, bounds)
    assert out.shape == (10, 10)
    assert (out.dn[:, :4] == 0).all() and (out.dn[:, :, :5] == 0).all()
    np.testing.assert_array_equal(out.dn[:, 4:, 5:], scene.dn[:, :6, :5])


def test_read_reprojects_a_scene_in_another_crs(tmp_path: Path) -> None:
    # The same ground in UTM 30N: read over EPSG:32631 bounds must warp it.
    from rasterio.warp import transform as warp_points

    xs, ys = warp_points(CRS, "EPSG:32630", [X0], [Y0])
    scene = make_scene(
        dt.date(2026, 3, 5),
        (60, 60),
        x0=round(xs[0]) - 100,
        y0=round(ys[0]) + 100,
        crs="EPSG:32630",
    )
    src = archive(tmp_path, [scene])
    bounds = Bounds(X0, Y0 - 200, X0 + 200, Y0, CRS)
    (ref,) = src.search(bounds, dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    out = src.read(ref, bounds)
    assert out.crs == CRS and out.shape == (20, 20)
    assert (out.dn > 0).all(), "the warped window lies inside the other-CRS scene"
    assert set(np.unique(out.scl)) <= set(np.unique(scene.scl)), "SCL must stay classes"


def test_read_truncated_file_names_the_file(tmp_path: Path) -> None:
    scene = make_scene(dt.date(2026, 3, 5), (40, 50))
    src = archive(tmp_path, [scene])
    bounds = full_bounds(scene)
    (ref,) = src.search(bounds, dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    path = Path(ref.href)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageryError, match="S2L2A_20260305.tif") as err:
        src.read(ref, bounds)
    assert "re-download or regenerate" in str(err.value)


def test_garbage_file_is_listed_by_name_and_fails_on_read(tmp_path: Path) -> None:
    (tmp_path / "scenes").mkdir()
    (tmp_path / "scenes" / "S2L2A_20260402.tif").write_bytes(b"not a tiff at all")
    (tmp_path / "scenes" / "junk.tif").write_bytes(b"nope")
    src = LocalArchiveSource(tmp_path)
    bounds = Bounds(X0, Y0 - 100, X0 + 100, Y0, CRS)
    refs = src.search(bounds, dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    assert [r.scene_id for r in refs] == ["S2L2A_20260402"]
    with pytest.raises(ImageryError, match="S2L2A_20260402.tif"):
        src.read(refs[0], bounds)


def test_wrong_band_count_is_an_imagery_error(tmp_path: Path) -> None:
    path = tmp_path / "scenes" / "S2L2A_20260305.tif"
    path.parent.mkdir(parents=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=8,
        height=8,
        count=3,
        dtype="uint16",
        crs=CRS,
        transform=Affine(10, 0, X0, 0, -10, Y0),
    ) as dst:
        dst.write(np.ones((3, 8, 8), dtype=np.uint16))
    src = LocalArchiveSource(tmp_path)
    bounds = Bounds(X0, Y0 - 80, X0 + 80, Y0, CRS)
    (ref,) = src.search(bounds, dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    with pytest.raises(ImageryError, match="3 bands; expected 11"):
        src.read(ref, bounds)


def test_wrong_band_order_is_an_imagery_error(tmp_path: Path) -> None:
    scene = make_scene(dt.date(2026, 3, 5), (8, 8))
    path = write_scene(tmp_path / "scenes" / "S2L2A_20260305.tif", scene)
    with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.set_band_description(1, "B03")
        dst.set_band_description(2, "B02")
    src = LocalArchiveSource(tmp_path)
    bounds = full_bounds(scene)
    (ref,) = src.search(bounds, dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    with pytest.raises(ImageryError, match="band descriptions"):
        src.read(ref, bounds)


def test_missing_archive_and_missing_file(tmp_path: Path) -> None:
    src = LocalArchiveSource(tmp_path / "nowhere")
    bounds = Bounds(X0, Y0 - 80, X0 + 80, Y0, CRS)
    with pytest.raises(ImageryError, match="scenes"):
        src.search(bounds, dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    ref = SceneRef("gone", dt.date(2026, 1, 1), str(tmp_path / "gone.tif"))
    with pytest.raises(ImageryError, match="does not exist"):
        src.read(ref, bounds)


def test_a_vrt_scene_is_read_at_its_own_grid(tmp_path: Path) -> None:
    """A GDAL virtual raster over a scene kept elsewhere, re-gridded 5 km east, is indexed and
    read like a file: its footprint is the VRT's, its pixels the source file's."""
    import rasterio.shutil

    scene = make_scene(dt.date(2026, 4, 2), (20, 30))
    elsewhere = write_scene(tmp_path / "kept" / scene_file_name(scene.date), scene)
    (tmp_path / "arc" / "scenes").mkdir(parents=True)
    vrt = tmp_path / "arc" / "scenes" / "S2L2A_20260402_east.vrt"
    rasterio.shutil.copy(str(elsewhere), str(vrt), driver="VRT")
    text = vrt.read_text()
    start, end = text.index("<GeoTransform>"), text.index("</GeoTransform>")
    moved = f"{X0 + 5000:.1f}, 10.0, 0.0, {Y0:.1f}, 0.0, -10.0"
    vrt.write_text(text[: start + len("<GeoTransform>")] + moved + text[end:])
    src = LocalArchiveSource(tmp_path / "arc")
    at_home = Bounds(X0, Y0 - 200, X0 + 300, Y0, CRS)
    assert src.search(at_home, dt.date(2026, 1, 1), dt.date(2026, 12, 1)) == []
    east = Bounds(X0 + 5000, Y0 - 200, X0 + 5300, Y0, CRS)
    (ref,) = src.search(east, dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    assert ref.scene_id == "S2L2A_20260402_east" and ref.date == scene.date
    out = src.read(ref, east)
    np.testing.assert_array_equal(out.dn, scene.dn)
    np.testing.assert_array_equal(out.scl, scene.scl)


def test_refresh_rereads_only_new_or_changed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = archive(tmp_path, [make_scene(dt.date(2026, 3, 1)), make_scene(dt.date(2026, 4, 1))])
    everything = (dt.date(2026, 1, 1), dt.date(2026, 12, 1))
    bounds = full_bounds(make_scene(dt.date(2026, 3, 1)))
    assert len(src.search(bounds, *everything)) == 2
    opened: list[str] = []
    real = LocalArchiveSource._index_file
    monkeypatch.setattr(
        LocalArchiveSource,
        "_index_file",
        staticmethod(lambda path: (opened.append(path.name), real(path))[1]),
    )
    src.refresh()
    assert len(src.search(bounds, *everything)) == 2
    assert opened == []  # nothing changed: no header read again
    write_scene(
        tmp_path / "scenes" / scene_file_name(dt.date(2026, 5, 1)), make_scene(dt.date(2026, 5, 1))
    )
    src.refresh()
    assert [r.date.month for r in src.search(bounds, *everything)] == [3, 4, 5]
    assert opened == ["S2L2A_20260501.tif"]
    (tmp_path / "scenes" / "S2L2A_20260301.tif").unlink()
    src.refresh()
    assert [r.date.month for r in src.search(bounds, *everything)] == [4, 5]
