"""The flow's assessment task widens the planted-area interval by the stage's error matrix."""

from __future__ import annotations

import datetime as dt

import numpy as np

from flows import tasks
from geo.composite import composite_dekads
from geo.parcels import validate_parcels
from geo.synth import SynthConfig, simulate_region, simulate_scenes
from vision.assess import assess_parcels
from vision.health import load_reference_curves
from vision.infer import predict_proba
from vision.model import load_segmenter


def test_assess_task_uses_the_error_matrix_of_the_stage() -> None:
    cfg = SynthConfig(seed=4243, size_px=64, n_farmers=6)
    region = simulate_region(cfg)
    as_of = dt.date(2026, 5, 31)
    comp = composite_dekads(simulate_scenes(region, cfg), cfg.season, as_of)
    parcels = validate_parcels(region.parcels).parcels
    table, _, _ = tasks.assess.fn(parcels, comp)

    seg = load_segmenter()
    proba = predict_proba(seg, seg.prepare(comp.data))
    kwargs = {
        "reference_curves": load_reference_curves(),
        "parcel_temperature": seg.parcel_temperature,
        "min_confidence": 0.9,
    }
    matrix = seg.error_matrix(as_of)
    assert matrix is not None
    with_matrix, _ = assess_parcels(parcels, comp, proba, area_error=matrix, **kwargs)
    plain, _ = assess_parcels(parcels, comp, proba, **kwargs)
    for col in ("planted_area_ha", "planted_area_lo_ha", "planted_area_hi_ha"):
        np.testing.assert_allclose(table[col], with_matrix[col])
    widened = (table["planted_area_hi_ha"] - table["planted_area_lo_ha"]) - (
        plain["planted_area_hi_ha"] - plain["planted_area_lo_ha"]
    )
    assert (widened >= -1e-9).all() and (widened > 1e-6).any()
