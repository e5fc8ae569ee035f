"""The segmenter on real pixels: the WorldCereal Belgian 64 x 64 patches (issue #8).

    python -m eval patches            (or: python -m eval.patches [--weights PATH])

Each patch (``../shared/data/worldcereal/belgium_patches/<id>/``, EPSG:32631, 10 m pixels,
Flanders 2017-2019) is turned into the model input the way the pipeline does it for imagery:
one :class:`geo.sources.base.SceneData` per acquisition with the 10 bands as uint16 digital
numbers (0 = nodata) on the 10 m grid (the 20 m bands B05-B07, B8A, B11, B12 and the SCL
layer upsampled nearest-neighbour, as the STAC and local sources read them), composited over
the season's 36 dekads with clouds masked by the patch's own SCL
(:func:`geo.composite.composite_dekads`, which masks with :func:`geo.masking.clear_mask`),
then :func:`vision.model.model_input` and tiled inference (:func:`vision.infer.predict_proba`).
The season is the one starting the November after the patch's first date (the label year).

Labels: the patch's per-pixel ``CT`` is in WorldCereal's older 4-digit crop legend
(:data:`OLD_CT_LABELS`); each code is translated to the name of the same crop in today's
legend and mapped to a project class through ``data/legend.csv``. Pixels without a crop code
take their land cover ``LC`` where it names a class (60 built-up -> ``non_crop``, 13 grassland
-> ``grassland``); every other pixel (no label, "no cropland", ``ignore`` classes) is left out.
A patch without its 10 m file (B02-B04, B08) cannot give the model's input and is skipped.

Printed: pixel OA and mIoU (over the classes present in the labels) over all evaluated
patches, per-class IoU with true and predicted pixel counts, and OA per patch. Skips with a
one-line message where ``../shared/data`` is absent.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from eval._weights_cli import main as weights_main
from eval.realcrops import confusion, per_class
from geo.sources.base import SceneData
from geo.types import BANDS, CROPS, Season

log = logging.getLogger(__name__)

PATCHES_DIR: Final[Path] = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "worldcereal" / "belgium_patches"
)
_TEN_M: Final[tuple[str, ...]] = ("B02", "B03", "B04", "B08")
#: WorldCereal's older crop legend (``CT``, as in the patches) -> label in ``data/legend.csv``.
OLD_CT_LABELS: Final[dict[int, str]] = {
    0: "unknown",
    1000: "unspecified_cereal",
    1100: "unspecified_wheat",
    1110: "unspecified_winter_wheat",
    1120: "unspecified_spring_wheat",
    1200: "maize",
    1500: "unspecified_barley",
    1510: "winter_barley",
    1520: "spring_barley",
    1600: "unspecified_rye",
    1610: "winter_rye",
    1620: "spring_rye",
    1700: "unspecified_oats",
    1900: "unspecified_cereal",
    1910: "unspecified_winter_cereal",
    1920: "unspecified_spring_cereal",
    2130: "cabbage",
    4100: "soy_soybeans",
    4350: "rapeseed_rape",
    4351: "winter_rapeseed_rape",
    4352: "spring_rapeseed_rape",
    4380: "sunflower",
    5100: "potatoes",
    7900: "dry_pulses_legumes",
    8100: "sugar_beet",
    9110: "temporary_grass",
    9120: "managed_grasslands",
    9213: "flax",
    9700: "alfalfa_lucerne",
}
#: Land cover (``LC``) -> legend label, for pixels without a crop code.
LC_LABELS: Final[dict[int, str]] = {13: "managed_grasslands", 60: "built_up"}
#: Label value for pixels left out of the scores.
IGNORED: Final[int] = -1


@dataclass(frozen=True, eq=False)
class Patch:
    """One patch ready for the model: scenes on its 10 m grid, labels and season."""

    patch_id: str
    scenes: list[SceneData]  # date order
    labels: np.ndarray  # (H, W) int64 CROPS index, IGNORED where left out
    season_year: int


def label_classes(ct: np.ndarray, lc: np.ndarray, legend_csv: Path | None = None) -> np.ndarray:
    """(H, W) int64 class index of :data:`geo.types.CROPS` from old ``CT`` and ``LC`` layers.

    ``ct`` is float with NaN where no parcel; unknown old codes raise, naming the code.

    Raises:
        geo.legend.LegendError: a code (old or translated) that the legend does not know.
    """
    import pandas as pd

    from geo.legend import IGNORE, LegendError, crops_for_codes
    from geo.paths import data_file
    from geo.types import CROP_INDEX

    path = legend_csv or data_file("legend.csv")
    table = pd.read_csv(path)
    code_of = dict(zip(table["label"], table["ewoc_code"], strict=True))
    out = np.full(ct.shape, IGNORED, dtype=np.int64)
    has_ct = np.isfinite(ct)
    for value in np.unique(ct[has_ct]).astype(np.int64):
        label = OLD_CT_LABELS.get(int(value))
        if label is None:
            raise LegendError(
                f"old WorldCereal crop code CT={value} is not in eval.patches.OLD_CT_LABELS; "
                "add its label in data/legend.csv"
            )
        crop = str(crops_for_codes([code_of[label]], path)[0])
        if crop != IGNORE:
            out[has_ct & (ct == value)] = CROP_INDEX[crop]
    for value, label in LC_LABELS.items():
        crop = str(crops_for_codes([code_of[label]], path)[0])
        out[~has_ct & (lc == value)] = CROP_INDEX[crop]
    return out


def _read(path: Path, names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], list[dt.date], str]:
    """Raw (undecoded) variables, acquisition dates and the ``bounds`` attribute of one file."""
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf", mask_and_scale=False) as ds:
        arrays = {n: ds[n].to_numpy() for n in names}
        stamps = ds["timestamp"].to_numpy().astype("datetime64[D]").tolist()
        bounds = str(ds[names[0]].attrs.get("bounds", ds.attrs.get("bounds")))
    return arrays, list(stamps), bounds


def read_patch(folder: Path) -> Patch | None:
    """The scenes, labels and season of one patch folder; None without a 10 m file."""
    from affine import Affine

    ten = sorted(folder.glob("S2_L2A_10m_*.nc"))
    twenty = sorted(folder.glob("S2_L2A_20m_*.nc"))
    output = sorted(folder.glob("OUTPUT_*.nc"))
    if not ten or not twenty or not output:
        return None
    b10, dates10, bounds = _read(ten[0], _TEN_M)
    names20 = tuple(b for b in BANDS if b not in _TEN_M)
    b20, dates20, _ = _read(twenty[0], (*names20, "SCL"))
    common = sorted(set(dates10) & set(dates20))
    i10 = [dates10.index(d) for d in common]
    i20 = [dates20.index(d) for d in common]
    up = {k: v[i20].repeat(2, axis=1).repeat(2, axis=2) for k, v in b20.items()}
    dn = np.stack(
        [(b10[b][i10] if b in _TEN_M else up[b]).astype(np.uint16) for b in BANDS], axis=1
    )
    scl = up["SCL"].astype(np.uint8)
    xmin, _, _, ymax = (float(v) for v in bounds.strip("()").split(","))
    grid = Affine(10.0, 0.0, xmin, 0.0, -10.0, ymax)
    scenes = [
        SceneData(f"{folder.name}-{d}", d, dn[k], scl[k], grid, "EPSG:32631")
        for k, d in enumerate(common)
    ]
    import xarray as xr

    with xr.open_dataset(output[0], engine="h5netcdf") as ds:
        ct, lc = ds["CT"].to_numpy(), ds["LC"].to_numpy()
    return Patch(folder.name, scenes, label_classes(ct, lc), common[0].year + 1)


#: Per patch: (true, predicted) class index of its labelled pixels and the season, or why not.
PatchResult = tuple[np.ndarray, np.ndarray, Season] | str


def evaluate(weights: Path | None = None) -> tuple[str, dict[str, PatchResult]]:
    """Segmenter version and, per patch id, its (truth, prediction) pixels or a skip reason."""
    from geo.composite import composite_dekads
    from vision.infer import predict_proba
    from vision.model import load_segmenter

    seg = load_segmenter(weights)
    out: dict[str, PatchResult] = {}
    for folder in sorted(p for p in PATCHES_DIR.iterdir() if p.is_dir()):
        patch = read_patch(folder)
        if patch is None:
            out[folder.name] = "no 10 m file (B02-B04, B08): cannot build the model input"
            continue
        season = Season(patch.season_year)
        comp = composite_dekads(patch.scenes, season, season.end)
        proba = predict_proba(seg, seg.prepare(comp.data), tile=64, overlap=0)
        keep = patch.labels >= 0
        out[folder.name] = (patch.labels[keep], proba.argmax(axis=0)[keep], season)
        log.info("patch %s: %d labelled pixels", folder.name, int(keep.sum()))
    return f"segmenter {seg.version} (T = {seg.temperature:.3f})", out


def run(weights: Path | None = None) -> str:
    """The report (plain text), or a one-line skip message."""
    if not PATCHES_DIR.is_dir():
        return f"skipped: Belgian patches not found ({PATCHES_DIR}); see ../shared/data/README.md"
    name, results = evaluate(weights)
    lines = [f"{name} on the WorldCereal Belgian 64 x 64 patches (real pixels, 10 m)", ""]
    lines.append("| patch | season | labelled px | pixel OA |")
    lines.append("|---|---|---|---|")
    truths, preds = [], []
    for pid, r in results.items():
        if isinstance(r, str):
            lines.append(f"| {pid} | - | - | skipped: {r} |")
            continue
        truth, pred, season = r
        truths.append(truth)
        preds.append(pred)
        lines.append(f"| {pid} | {season} | {truth.size} | {float((truth == pred).mean()):.3f} |")
    if not truths:
        return "\n".join([*lines, "", "no patch could be evaluated"])
    cm = confusion(np.concatenate(truths), np.concatenate(preds))
    pc = per_class(cm)
    present = pc["support"] > 0
    oa = float(np.trace(cm) / cm.sum())
    miou = float(pc["iou"][present].mean())
    lines += [
        "",
        f"all patches: pixel OA {oa:.3f}, mIoU {miou:.3f} over the {int(present.sum())} "
        f"classes in the labels ({int(cm.sum())} labelled pixels)",
        "",
        "| class | IoU | true px | predicted px |",
        "|---|---|---|---|",
    ]
    for i, crop in enumerate(CROPS):
        if pc["support"][i] or pc["predicted"][i]:
            iou = f"{pc['iou'][i]:.3f}" if pc["support"][i] else "-"
            lines.append(f"| {crop} | {iou} | {pc['support'][i]} | {pc['predicted'][i]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return weights_main(__doc__ or "", run, argv)


if __name__ == "__main__":
    sys.exit(main())
