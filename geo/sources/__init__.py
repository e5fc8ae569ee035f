"""Imagery sources behind one interface (:class:`geo.sources.base.TileSource`)."""

from geo.sources.base import SCENE_BANDS, Bounds, SceneData, SceneRef, TileSource

__all__ = ["SCENE_BANDS", "Bounds", "SceneData", "SceneRef", "TileSource"]
