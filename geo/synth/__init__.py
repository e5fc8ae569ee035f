"""Deterministic generator of a realistic Sentinel-2 season over farm parcels.

Frames: UTM (default EPSG:32631, north of Poitiers), metres and hectares; rasters (H, W) on a
10 m grid, scenes ``dn`` (10, H, W) uint16 in :data:`geo.types.BANDS` order; season
``geo.types.Season`` (1 Nov - 31 Oct). Crop curves are calibrated on real Sentinel-2 parcels
(``eval/calibrate_generator.py`` writes ``data/crop_calendar.csv``); see ``data/README.md``.

Public surface::

    cfg = SynthConfig(seed=7, size_px=480)
    region = simulate_region(cfg)              # parcels, farmers, truth, crop_map
    for scene in simulate_scenes(region, cfg): # one SceneData per acquisition (5-day revisit)
        ...
    write_archive(Path("out/demo"), cfg)       # COG archive + GeoParquet + truth + manifest
"""

from geo.synth.archive import GENERATOR_VERSION, write_archive
from geo.synth.region import SynthConfig, SyntheticRegion, simulate_region
from geo.synth.scenes import acquisition_dates, simulate_scenes

__all__ = [
    "GENERATOR_VERSION",
    "SynthConfig",
    "SyntheticRegion",
    "acquisition_dates",
    "simulate_region",
    "simulate_scenes",
    "write_archive",
]
