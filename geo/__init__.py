"""The geo stage: parcels, imagery sources, cloud masks, dekad composites, indices, zonal stats.

Pure numpy / rasterio / geopandas; never imports torch or prefect. Frames: UTM CRS (metres),
areas in hectares, reflectance 0-1, arrays (T, C, H, W) over the 36 dekads of a
:class:`~geo.types.Season` with the bands of :data:`~geo.types.BANDS`.

The public surface is listed here; remote sources (``geo.sources.sentinelhub``,
``geo.sources.stac``) and the scene generator (``geo.synth``) are imported from their own
modules so that importing ``geo`` stays light and offline.
"""

from geo.composite import Composite, composite_dekads, fill_gaps
from geo.errors import (
    CropCreditError,
    ImageryError,
    ParcelError,
    ParcelGeometryError,
    SourceUnavailableError,
)
from geo.indices import ndmi, ndre, ndvi, normalized_difference
from geo.masking import DEFAULT_MASKED_SCL, clear_mask, clear_mask_from_probability
from geo.parcels import (
    REQUIRED_COLUMNS,
    ParcelSet,
    find_overlaps,
    read_parcels,
    validate_parcels,
)
from geo.sources.base import SCENE_BANDS, Bounds, SceneData, SceneRef, TileSource
from geo.sources.local import LocalArchiveSource, write_scene
from geo.types import BANDS, CROP_INDEX, CROPS, REFLECTANCE_SCALE, STAGES, GrowthStage, Season
from geo.zonal import (
    ParcelPixels,
    build_parcel_index,
    grid_parcel_index,
    parcel_class_fractions,
    parcel_mean,
    parcel_observed_fraction,
    parcel_proba_mean,
    rasterize_parcels,
)

__all__ = [
    "BANDS",
    "CROPS",
    "CROP_INDEX",
    "DEFAULT_MASKED_SCL",
    "REFLECTANCE_SCALE",
    "REQUIRED_COLUMNS",
    "SCENE_BANDS",
    "STAGES",
    "Bounds",
    "Composite",
    "CropCreditError",
    "GrowthStage",
    "ImageryError",
    "LocalArchiveSource",
    "ParcelError",
    "ParcelGeometryError",
    "ParcelPixels",
    "ParcelSet",
    "SceneData",
    "SceneRef",
    "Season",
    "SourceUnavailableError",
    "TileSource",
    "build_parcel_index",
    "grid_parcel_index",
    "clear_mask",
    "clear_mask_from_probability",
    "composite_dekads",
    "fill_gaps",
    "find_overlaps",
    "ndmi",
    "ndre",
    "ndvi",
    "normalized_difference",
    "parcel_class_fractions",
    "parcel_mean",
    "parcel_observed_fraction",
    "parcel_proba_mean",
    "rasterize_parcels",
    "read_parcels",
    "validate_parcels",
    "write_scene",
]
