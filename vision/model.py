"""The crop-type segmenter: config, model input, architecture, save and load.

Input frame: a dekad composite ``(T, C, H, W)`` of reflectance 0-1 (NaN = missing), T = 36
dekads of the season, C = the 10 bands of :data:`geo.types.BANDS`, 10 m pixels.
:func:`model_input` turns it into ``(T*C + T, H, W)`` float32 channels: the T*C reflectances
(time-major: t0 B02..B12, t1 B02..B12, ...) scaled per band to about 0-1 with missing -> 0,
then T validity channels (1 where dekad t was observed or gap-filled, 0 where missing, e.g.
dekads after ``as_of``). Time enters as stacked channels.

Architecture (:class:`CropSegmenter`): a per-pixel temporal-spectral stem (two 1x1 convs,
``T*C + T -> stem_channels``) feeds a small smp U-Net (resnet18 encoder, depth 3) for spatial
context; a 1x1 pixel head on the stem features is added to the U-Net logits so that parcel
edges keep full 10 m resolution (the U-Net's last decoder stage has no full-resolution skip).
Output: logits ``(N, K, H, W)`` over :data:`geo.types.CROPS`.

Weights file (``data/models/segmenter.pt``): a ``torch.save`` dict with ``format``,
``config`` (the :class:`SegmenterConfig`), ``state_dict``, ``temperature`` (calibration) and
``meta`` (training data, metrics, date); loaded with ``weights_only=True``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from geo.errors import ModelError
from geo.paths import shipped_file
from geo.types import BANDS, CROPS, Season
from vision import _compat  # noqa: F401  (must precede smp)

log = logging.getLogger(__name__)

#: Format tag of the weights file; bump when the layout changes.
WEIGHTS_FORMAT: Final[str] = "cropcredit-segmenter/1"
#: Default weights: ``data/models/segmenter.pt`` as shipped (see :func:`geo.paths.shipped_file`).
DEFAULT_WEIGHTS: Final[Path] = shipped_file("models/segmenter.pt")
#: Per-band reflectance that maps to 1.0 in the model input (about the 99th percentile of
#: vegetated and bare-soil pixels), in BANDS order B02..B12.
BAND_SCALE: Final[tuple[float, ...]] = (0.15, 0.2, 0.25, 0.3, 0.4, 0.45, 0.5, 0.5, 0.4, 0.3)
assert len(BAND_SCALE) == len(BANDS)


class SegmenterConfig(BaseModel):
    """Architecture of the segmenter (saved with the weights; ``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    encoder: str = "resnet18"
    encoder_depth: int = Field(default=3, ge=1, le=5)
    decoder_channels: tuple[int, ...] = (64, 32, 16)
    n_steps: int = Field(default=36, ge=1)
    bands: int = Field(default=len(BANDS), ge=1)
    classes: int = Field(default=len(CROPS), ge=2)
    #: Width of the per-pixel 1x1 stem; 0 feeds the stacked channels straight to the encoder.
    stem_channels: int = Field(default=64, ge=0)
    #: Append T validity channels (observed or gap-filled = 1) to the reflectances.
    validity_channels: bool = True
    #: Add a full-resolution 1x1 pixel head on the stem features to the U-Net logits.
    pixel_head: bool = True

    @property
    def in_channels(self) -> int:
        """Channels of :func:`model_input`: T*C (+ T validity channels)."""
        return self.n_steps * self.bands + (self.n_steps if self.validity_channels else 0)

    @property
    def size_multiple(self) -> int:
        """H and W of a forward pass must be multiples of this (2 ** encoder_depth)."""
        return int(2**self.encoder_depth)


def model_input(composite_data: np.ndarray, *, validity: bool = True) -> np.ndarray:
    """Channels the segmenter reads from a composite.

    Args:
        composite_data: (T, C, H, W) reflectance 0-1, NaN = missing (C in BANDS order).
        validity: append T validity channels (must match ``SegmenterConfig.validity_channels``).

    Returns:
        (T*C [+ T], H, W) float32: reflectance clipped to 0-1 and divided by
        :data:`BAND_SCALE`, missing -> 0, time-major; then 1.0/0.0 validity per dekad.

    Raises:
        ValueError: the array is not 4-D with C = len(BANDS).
    """
    if composite_data.ndim != 4 or composite_data.shape[1] != len(BANDS):
        raise ValueError(
            f"composite data has shape {composite_data.shape}; expected (T, {len(BANDS)}, H, W) "
            "reflectance in BANDS order (use geo.composite.composite_dekads)"
        )
    t, c, h, w = composite_data.shape
    scale = np.asarray(BAND_SCALE, dtype=np.float32).reshape(1, c, 1, 1)
    n_out = t * c + (t if validity else 0)
    out = np.empty((n_out, h, w), dtype=np.float32)
    refl = out[: t * c].reshape(t, c, h, w)
    np.clip(composite_data, 0.0, 1.0, out=refl, casting="unsafe")
    np.divide(refl, scale, out=refl)
    finite = np.isfinite(refl)
    np.copyto(refl, 0.0, where=~finite)
    if validity:
        out[t * c :] = finite.all(axis=1)
    return out


class CropSegmenter(nn.Module):
    """Stem (1x1, per pixel) -> smp U-Net, plus a full-resolution pixel head.

    ``forward(x)``: x (N, in_channels, H, W) from :func:`model_input`, H and W multiples of
    ``cfg.size_multiple``; returns logits (N, classes, H, W).
    """

    def __init__(self, cfg: SegmenterConfig) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        width = cfg.stem_channels
        if width > 0:
            self.stem: nn.Module = nn.Sequential(
                nn.Conv2d(cfg.in_channels, width, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            )
        else:
            self.stem = nn.Identity()
        unet_in = width if width > 0 else cfg.in_channels
        if len(cfg.decoder_channels) != cfg.encoder_depth:
            raise ModelError(
                f"decoder_channels {cfg.decoder_channels} must have encoder_depth="
                f"{cfg.encoder_depth} entries"
            )
        try:
            self.unet = smp.Unet(
                encoder_name=cfg.encoder,
                encoder_depth=cfg.encoder_depth,
                encoder_weights=None,
                decoder_channels=tuple(cfg.decoder_channels),
                in_channels=unet_in,
                classes=cfg.classes,
            )
        except (KeyError, ValueError) as exc:
            raise ModelError(
                f"cannot build encoder {cfg.encoder!r}: {exc}; use an smp encoder name such as "
                "'resnet18' or 'efficientnet-b0'"
            ) from exc
        # resnet encoders keep stages deeper than encoder_depth although forward skips them.
        for depth, name in ((4, "layer3"), (5, "layer4")):
            if cfg.encoder_depth < depth and hasattr(self.unet.encoder, name):
                delattr(self.unet.encoder, name)
        self.pixel_head: nn.Module | None = (
            nn.Conv2d(unet_in, cfg.classes, 1) if cfg.pixel_head else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        logits: torch.Tensor = self.unet(h)
        if self.pixel_head is not None:
            logits = logits + self.pixel_head(h)
        return logits


def build_model(cfg: SegmenterConfig) -> nn.Module:
    """A freshly initialised :class:`CropSegmenter` (no pretrained weights, no network)."""
    return CropSegmenter(cfg)


@dataclass
class Segmenter:
    """A loaded segmenter: ``model`` (eval mode, CPU), its config, calibration and metadata.

    ``temperature`` divides the logits before the softmax; ``meta["version"]`` is the first
    12 hex digits of the weights file's SHA-256.
    """

    model: nn.Module
    cfg: SegmenterConfig
    temperature: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "unsaved"))

    @property
    def series_temperature(self) -> float:
        """Temperature of the classify path (:mod:`vision.classify`: a parcel's series as a
        uniform image), fitted on real labelled parcels; the scene ``temperature`` where none
        was fitted (``meta["series_temperature"]``)."""
        return float(self.meta.get("series_temperature", self.temperature))

    @property
    def parcel_temperature(self) -> float:
        """Temperature of a parcel's mean pixel probabilities (:func:`vision.calibration.
        parcel_probabilities`), fitted on the calibration regions' parcels; 1 (the plain mean)
        where none was fitted (``meta["parcel_temperature"]``)."""
        return float(self.meta.get("parcel_temperature", 1.0))

    def error_matrix(self, as_of: dt.date) -> np.ndarray | None:
        """The (K, K) error matrix (rows true class, columns predicted) for the planted-area
        interval of :mod:`vision.assess`, measured on the held-out generated regions at the
        latest decision stage on or before ``as_of`` (the first stage before any).

        Read from ``meta["area_error_by_stage"]`` (parcels' interior pixels, the pixels the
        assessment reads), else ``meta["confusion_by_stage"]`` (all pixels), else the harvest
        ``meta["confusion"]``; None where the weights hold none. A fine-tuned model carries
        its base model's matrices."""
        by_stage = self.meta.get("area_error_by_stage") or self.meta.get("confusion_by_stage") or {}
        dates = self.meta.get("stage_dates") or {}
        season = Season.of(as_of)
        stages = [(season.date(str(mm_dd)), s) for s, mm_dd in dates.items() if s in by_stage]
        if stages:
            stages.sort()
            past = [stage for when, stage in stages if when <= as_of]
            matrix = by_stage[past[-1] if past else stages[0][1]]
        else:
            matrix = self.meta.get("confusion")
        if matrix is None:
            return None
        out = np.asarray(matrix, dtype=np.float64)
        k = self.cfg.classes
        if out.shape != (k, k):
            raise ModelError(f"error matrix has shape {out.shape}; expected ({k}, {k})")
        return out

    def prepare(self, composite_data: np.ndarray) -> np.ndarray:
        """:func:`model_input` with this model's validity setting: (T, C, H, W) -> (Cin, H, W)."""
        return model_input(composite_data, validity=self.cfg.validity_channels)


def save_segmenter(
    path: Path,
    model: nn.Module,
    cfg: SegmenterConfig,
    temperature: float = 1.0,
    meta: dict[str, Any] | None = None,
) -> str:
    """Write weights, config, temperature and metadata to ``path``; return the version hash.

    ``meta`` must hold plain values (str, int, float, bool, lists and dicts of them).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    try:  # plain JSON values only, so the file loads with weights_only=True
        meta = json.loads(json.dumps(meta or {}, default=str))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"segmenter metadata is not JSON-serialisable: {exc}") from exc
    payload = {
        "format": WEIGHTS_FORMAT,
        "config": cfg.model_dump(mode="json"),
        "state_dict": state,
        "temperature": float(temperature),
        "meta": meta,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    version = _file_hash(path)
    log.info("saved segmenter %s (version %s, %.1f MB)", path, version, path.stat().st_size / 1e6)
    return version


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def load_segmenter(path: Path | None = None) -> Segmenter:
    """Load a segmenter saved by :func:`save_segmenter` (default :data:`DEFAULT_WEIGHTS`).

    Raises:
        ModelError: the file is missing, corrupt, of another format, or does not fit the code.
    """
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    fix = "retrain with `cropcredit train-segmenter --out data/models/segmenter.pt --seed 0`"
    if not path.is_file():
        raise ModelError(f"segmenter weights not found at {path}; restore the file or {fix}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types on corrupt pickles / zips
        raise ModelError(f"{path}: cannot read segmenter weights ({exc}); {fix}") from exc
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        got = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ModelError(f"{path}: weights format {got!r}, expected {WEIGHTS_FORMAT!r}; {fix}")
    try:
        cfg = SegmenterConfig.model_validate(payload["config"])
        model = build_model(cfg)
        state = {
            k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()
        }
        model.load_state_dict(state)
    except Exception as exc:
        raise ModelError(f"{path}: weights do not match the model code ({exc}); {fix}") from exc
    model.eval()
    meta = dict(payload.get("meta") or {})
    meta["version"] = _file_hash(path)
    temperature = float(payload.get("temperature", 1.0))
    if not np.isfinite(temperature) or temperature <= 0:
        raise ModelError(f"{path}: temperature {temperature} must be > 0; {fix}")
    return Segmenter(model=model, cfg=cfg, temperature=temperature, meta=meta, path=path)
