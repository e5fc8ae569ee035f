"""The crop legend: WorldCereal ``ewoc_code`` -> the project's crop class (``data/legend.csv``).

``data/legend.csv`` has one row per code of WorldCereal's legend
(``crop_type_class_mappings.csv``): ``ewoc_code`` (the integer form used in the extractions,
e.g. ``1101010011`` for ``11-01-01-001-1``), ``crop`` (a class of :data:`geo.types.CROPS`, or
``ignore`` where the code says too little to train or score on: unknown land, unspecified
cropland or arable land, annual/perennial mixtures), and ``label`` (WorldCereal's name, for
people). It is made by :func:`build_legend` from WorldCereal's table with the rules below and
committed, so that running the pipeline never needs the WorldCereal file:

    python -m geo.legend ../shared/data/worldcereal/crop_type_class_mappings.csv

Rules (first match wins): maize -> ``maize``; sorghum, millet, rice, teff and maize mixtures ->
``other_annual`` (summer cereals too rare to learn); wheat, barley, rye, oats, triticale,
spelt, cereal mixtures: ``spring_*`` names -> ``spring_cereals``, the rest ->
``winter_cereals`` (in Europe a cereal without a season is almost always winter-sown);
rapeseed/rape -> ``rapeseed``; sunflower -> ``sunflower``; soybean -> ``soybean``; root and
tuber crops (potato, beet, cassava...) -> ``potato``; grass and fodder crops, fallow and
herbaceous grassland -> ``grassland`` (fallow in the EU registers is grass-covered
set-aside); other temporary crops -> ``other_annual``; permanent crops and agroforestry ->
``permanent``; trees, shrubs, wetlands, built-up, bare land, water, greenhouses -> ``non_crop``.
"""

from __future__ import annotations

import argparse
import difflib
import logging
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from geo.errors import CropCreditError
from geo.paths import data_file
from geo.types import CROPS

__all__ = [
    "IGNORE",
    "LegendError",
    "build_legend",
    "close_crops",
    "crops_for_codes",
    "legend_names",
    "load_legend",
]

log = logging.getLogger(__name__)

#: Class name for codes that cannot be used as a crop label.
IGNORE: Final[str] = "ignore"

_SMALL_GRAINS: Final[tuple[str, ...]] = (
    "wheat",
    "barley",
    "rye",
    "oats",
    "triticale",
    "cereal_mixtures",
    "unspecified_cereal",
    "canary_seed",
)
_OTHER_SUMMER_CEREALS: Final[tuple[str, ...]] = ("sorghum", "millet", "rice", "teff")
_NON_CROP_LEVEL1: Final[frozenset[str]] = frozenset(
    {
        "bare_sparsely_vegetated",
        "built_up",
        "greenhouse_foil_film_indoor",
        "open_water",
        "shrubland",
        "trees_broadleaved",
        "trees_coniferous",
        "trees_mixed",
        "trees_unspecified",
        "non_cropland_mixed",
        "non_cropland_incl_perennial",
    }
)


class LegendError(CropCreditError):
    """A crop code is not in the legend, or the legend file is malformed."""


def code_to_int(code: str) -> int:
    """``"11-01-01-001-1"`` -> ``1101010011`` (the form used in the extractions)."""
    digits = code.replace("-", "").strip()
    if not digits.isdigit():
        raise LegendError(f"ewoc_code {code!r} is not of the form NN-NN-NN-NNN-N")
    return int(digits)


def _rule(level_1: str, level_2: str, level_3: str, label: str) -> str:
    """The project's class for one WorldCereal legend row (see the module docstring)."""
    text = f"{level_3} {label}"
    if level_1 in ("unknown", "cropland_unspecified", "mixed cropland"):
        return IGNORE
    if level_1 == "temporary_crops":
        if not level_2:
            return IGNORE  # "arable land", no crop named
        if level_2 == "cereals":
            if "maize" in text:
                return "other_annual" if "mixture" in text or "millet" in text else "maize"
            if any(k in level_3 for k in _OTHER_SUMMER_CEREALS):
                return "other_annual"
            if any(k in level_3 for k in _SMALL_GRAINS):
                return "spring_cereals" if "spring" in label else "winter_cereals"
            return "other_annual"
        if level_2 == "oilseed_crops":
            if "rape" in label and "forage" not in label:
                return "rapeseed"
            if label == "sunflower":
                return "sunflower"
            if label.startswith("soy"):
                return "soybean"
            return "other_annual"
        if level_2 == "root_tuber_crops":
            return "potato"
        if level_2 in ("grass_fodder_crops", "not_cultivated_fallow"):
            return "grassland"
        return "other_annual"
    if level_1 == "mixed_cropland":
        if level_2 == "agroforestry":
            return "permanent"
        if level_2 == "kitchen_allotment_gardens":
            return "other_annual"
        return IGNORE
    if level_1 == "permanent_crops":
        return "permanent"
    if level_1 == "non_cropland_herbaceous":
        return "non_crop" if level_2 == "wetlands" else "grassland"
    if level_1 == "non_cropland_excl_perennial":
        return "grassland"
    if level_1 in _NON_CROP_LEVEL1:
        return "non_crop"
    raise LegendError(
        f"no rule maps WorldCereal level_1 {level_1!r} ({label!r}); add one to geo/legend.py"
    )


def build_legend(mappings_csv: Path) -> pd.DataFrame:
    """The legend table from WorldCereal's ``crop_type_class_mappings.csv`` (``;``-separated)."""
    table = pd.read_csv(mappings_csv, sep=";", encoding="utf-8-sig", dtype=str).fillna("")
    missing = {"ewoc_code", "level_1", "level_2", "level_3", "label_full"} - set(table.columns)
    if missing:
        raise LegendError(f"{mappings_csv}: columns {sorted(missing)} missing; is it the legend?")
    rows = []
    for rec in table.to_dict("records"):
        r = {k: str(v).strip() for k, v in rec.items()}
        crop = _rule(r["level_1"], r["level_2"], r["level_3"], r["label_full"])
        rows.append(
            {"ewoc_code": code_to_int(r["ewoc_code"]), "crop": crop, "label": r["label_full"]}
        )
    out = pd.DataFrame(rows).drop_duplicates("ewoc_code").sort_values("ewoc_code")
    return out.reset_index(drop=True)


@cache
def load_legend(path: Path | None = None) -> dict[int, str]:
    """``ewoc_code`` -> crop class (or :data:`IGNORE`) from ``data/legend.csv``."""
    path = path or data_file("legend.csv")
    try:
        table = pd.read_csv(path, dtype={"ewoc_code": "int64", "crop": "str"})
    except (OSError, ValueError) as exc:
        raise LegendError(f"cannot read the crop legend {path}: {exc}") from exc
    bad = sorted(set(table["crop"]) - set(CROPS) - {IGNORE})
    if bad:
        raise LegendError(
            f"{path}: crop names {bad} are not classes of the legend {list(CROPS)} or {IGNORE!r}"
        )
    return dict(zip(table["ewoc_code"].tolist(), table["crop"].tolist(), strict=True))


@cache
def legend_names(path: Path | None = None) -> dict[str, str]:
    """Every name the legend knows -> its crop class: the classes of :data:`geo.types.CROPS`
    and WorldCereal's labels of ``data/legend.csv`` (``common_soft_wheat`` ->
    ``winter_cereals``), labels of :data:`IGNORE` codes left out."""
    path = path or data_file("legend.csv")
    try:
        table = pd.read_csv(path, dtype={"crop": "str", "label": "str"})
    except (OSError, ValueError) as exc:
        raise LegendError(f"cannot read the crop legend {path}: {exc}") from exc
    names = {
        str(label).strip().lower(): str(crop)
        for label, crop in zip(table["label"], table["crop"], strict=True)
        if str(crop) in CROPS and isinstance(label, str)
    }
    return names | {c: c for c in CROPS}


def close_crops(name: str, n: int = 3, path: Path | None = None) -> list[str]:
    """The legend classes closest to an unknown crop ``name``, each said as a hint.

    ``name`` (lower-cased, spaces and hyphens as underscores) is looked up among the class
    names and WorldCereal's labels (:func:`legend_names`): an exact label first, then the
    classes whose labels hold every word of ``name`` (most labels first: ``wheat`` ->
    ``winter_cereals``), then :func:`difflib.get_close_matches` over all names. A label
    stands for its class: ``"common_soft_wheat"`` -> ``["winter_cereals (legend label
    'common_soft_wheat')", ...]``. Empty when nothing is close.
    """
    names = legend_names(path)
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    words = set(key.split("_")) - {""}
    found: list[tuple[str, str]] = []
    if key in names:
        found.append((names[key], key))
    by_words: dict[str, list[str]] = {}
    for label, crop in names.items():
        if words and words <= set(label.split("_")):
            by_words.setdefault(crop, []).append(label)
    for crop, labels in sorted(by_words.items(), key=lambda kv: -len(kv[1])):
        found.append((crop, min(labels, key=len)))
    for match in difflib.get_close_matches(key, list(names), n=3 * n, cutoff=0.6):
        found.append((names[match], match))
    hints: dict[str, str] = {}
    for crop, label in found:
        if crop not in hints:
            hints[crop] = crop if label == crop else f"{crop} (legend label {label!r})"
    return list(hints.values())[:n]


def crops_for_codes(codes: Iterable[int], path: Path | None = None) -> np.ndarray:
    """Crop class name per ``ewoc_code``; a code not in the legend is an error naming it."""
    path = path or data_file("legend.csv")
    legend = load_legend(path)
    arr = np.asarray(list(codes), dtype=np.int64)
    unknown = sorted({int(c) for c in np.unique(arr)} - set(legend))
    if unknown:
        raise LegendError(
            f"ewoc_code(s) {unknown[:10]} are not in the crop legend {path}; add a row per code "
            "(columns ewoc_code, crop, label) or rebuild it with `python -m geo.legend`"
        )
    return np.array([legend[int(c)] for c in arr], dtype=object)


def main(argv: list[str] | None = None) -> None:
    """Rebuild ``data/legend.csv`` from WorldCereal's legend CSV."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mappings", type=Path, help="crop_type_class_mappings.csv")
    parser.add_argument("--out", type=Path, default=None, help="default: data/legend.csv")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out or data_file("legend.csv")
    table = build_legend(args.mappings)
    table.to_csv(out, index=False)
    counts = table["crop"].value_counts().to_dict()
    log.info("wrote %s: %d codes; %s", out, len(table), counts)


if __name__ == "__main__":
    main()
