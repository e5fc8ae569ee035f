"""One factory for imagery sources: ``open_source(params)`` by name."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from geo.sources.base import Bounds, SceneData, SceneRef, TileSource

log = logging.getLogger(__name__)

SOURCE_NAMES = ("generated", "local", "stac", "sentinelhub")


class _SourceParams(Protocol):
    """What the factory reads (``flows.settings.SourceParams`` has these, read-only)."""

    @property
    def source(self) -> str: ...
    @property
    def archive(self) -> Path: ...
    @property
    def catalog_url(self) -> str | None: ...
    @property
    def collection(self) -> str: ...
    @property
    def max_cloud_cover(self) -> float: ...
    @property
    def sh_profile(self) -> str | None: ...
    @property
    def sh_base_url(self) -> str | None: ...
    @property
    def cache_dir(self) -> Path | None: ...
    @property
    def seed(self) -> int: ...
    @property
    def size_px(self) -> int: ...


class GeneratedSource:
    """The embedded default: a generated season, written once to a local archive and read
    back exactly as a lender's archive would be."""

    name = "generated"

    def __init__(self, root: Path, seed: int = 7, season: int = 2026, size_px: int = 480) -> None:
        from geo.sources.local import LocalArchiveSource
        from geo.synth import SynthConfig, write_archive
        from geo.types import Season

        write_archive(Path(root), SynthConfig(seed=seed, season=Season(season), size_px=size_px))
        self._local = LocalArchiveSource(Path(root))

    def search(self, bounds: Bounds, start: Any, end: Any) -> list[SceneRef]:
        return self._local.search(bounds, start, end)

    def read(self, ref: SceneRef, bounds: Bounds, resolution: float = 10.0) -> SceneData:
        return self._local.read(ref, bounds, resolution)

    def footprint(self) -> Bounds | None:
        """The generated archive's footprint (see ``LocalArchiveSource.footprint``)."""
        return self._local.footprint()


def open_source(params: _SourceParams) -> TileSource:
    """The source named by ``params.source``.

    Raises:
        ValueError: an unknown source name (the message lists the valid ones).
    """
    name = params.source
    if name == "generated":
        return GeneratedSource(params.archive, seed=params.seed, size_px=params.size_px)
    if name == "local":
        from geo.sources.local import LocalArchiveSource

        return LocalArchiveSource(params.archive)
    cache = params.cache_dir or params.archive / "cache"
    if name == "stac":
        from geo.sources.stac import StacSource

        kwargs: dict[str, Any] = {"collection": params.collection, "cache_dir": cache}
        if params.catalog_url:
            kwargs["catalog_url"] = params.catalog_url
        return StacSource(max_cloud_cover=params.max_cloud_cover, **kwargs)
    if name == "sentinelhub":
        from geo.sources.sentinelhub import SentinelHubSource

        return SentinelHubSource.from_settings(
            profile=params.sh_profile,
            base_url=params.sh_base_url,
            cache_dir=cache,
            max_cloud_cover=params.max_cloud_cover,
        )
    raise ValueError(f"unknown imagery source {name!r}; expected one of {', '.join(SOURCE_NAMES)}")
