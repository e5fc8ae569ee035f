"""Crop-type segmentation, tiled inference, parcel assessment and crop health.

The only package that imports torch. ``vision._compat`` is imported first: it makes
segmentation_models_pytorch importable beside the CPU torch wheel (see its docstring).

Public surface:

- :mod:`vision.model`: ``SegmenterConfig``, ``model_input``, ``build_model``,
  ``save_segmenter``, ``load_segmenter`` -> ``Segmenter``;
- :mod:`vision.infer`: ``predict_proba`` (tiled, calibrated (K, H, W) probabilities);
- :mod:`vision.assess`: ``assess_parcels`` (one row per parcel + index curves);
- :mod:`vision.health`: ``load_reference_curves``, ``health_zscore``, ``health_class``,
  ``health_since``, ``growth_stage_of``;
- :mod:`vision.train`: ``TrainConfig``, ``train_segmenter``, ``train_and_save`` (the
  ``cropcredit train-segmenter`` command), ``evaluate_segmenter``.
"""

from vision import _compat  # noqa: F401  (first: registers torchvision op schemas)
from vision.assess import assess_parcels
from vision.health import (
    growth_stage_of,
    health_class,
    health_since,
    health_zscore,
    load_reference_curves,
)
from vision.infer import predict_proba
from vision.metrics import evaluate_segmenter
from vision.model import (
    Segmenter,
    SegmenterConfig,
    build_model,
    load_segmenter,
    model_input,
    save_segmenter,
)
from vision.train import TrainConfig, train_and_save, train_segmenter

__all__ = [
    "Segmenter",
    "SegmenterConfig",
    "TrainConfig",
    "assess_parcels",
    "build_model",
    "evaluate_segmenter",
    "growth_stage_of",
    "health_class",
    "health_since",
    "health_zscore",
    "load_reference_curves",
    "load_segmenter",
    "model_input",
    "predict_proba",
    "save_segmenter",
    "train_and_save",
    "train_segmenter",
]
