"""``cropcredit train-segmenter --labels PARCELS --imagery DIR``: a lender fine-tunes the shipped
segmenter on their own labelled parcels and local archive, through the command line."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from flows.cli import app
from geo.types import CROPS
from vision.model import load_segmenter
from vision.train import TRAIN_SEEDS


@pytest.fixture(scope="module")
def finetuned(small_archive: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("finetune") / "lender.pt"
    before = sorted(p.relative_to(small_archive) for p in small_archive.rglob("*"))
    result = CliRunner().invoke(
        app,
        [
            "train-segmenter",
            "--labels",
            str(small_archive / "parcels.parquet"),
            "--imagery",
            str(small_archive),
            "--season",
            "2026",
            "--epochs",
            "1",
            "--out",
            str(out),
        ],
    )
    after = sorted(p.relative_to(small_archive) for p in small_archive.rglob("*"))
    return result, out, before, after


def test_finetune_from_labels_and_imagery_writes_weights_and_card(finetuned) -> None:
    result, out, _, _ = finetuned
    assert result.exit_code == 0, result.output
    seg = load_segmenter(out)
    shipped = load_segmenter()
    ft = seg.meta["finetune"]
    assert ft["init_version"] == shipped.version
    assert ft["steps"] == ft["planned_steps"] > 0
    assert len(ft["loss_history"]) == 1 + 1  # first batch, then per epoch (--epochs 1)
    assert all(np.isfinite(ft["loss_history"]))
    changed = [
        k
        for k, v in seg.model.state_dict().items()
        if v.is_floating_point() and not torch.equal(v, shipped.model.state_dict()[k])
    ]
    assert changed, "fine-tuning left every weight as shipped"
    assert ft["data"]["replay_regions"] == [TRAIN_SEEDS, TRAIN_SEEDS + 1]
    card = out.with_suffix(".md").read_text()
    assert "--labels" in card and seg.version in card and "Replayed" in card


def test_finetune_labels_are_the_declared_crops_of_the_parcels(finetuned, small_archive) -> None:
    """Every labelled pixel comes from a parcel, labelled with its declared crop: per class,
    the pixel count matches the declared area at 10 m (pixel centres: within 15 %)."""
    result, out, _, _ = finetuned
    assert result.exit_code == 0, result.output
    pixels = load_segmenter(out).meta["finetune"]["data"]["scene_pixels"]
    parcels = gpd.read_parquet(small_archive / "parcels.parquet")
    area_px = (parcels.geometry.area / 100.0).groupby(parcels["declared_crop"]).sum()
    assert set(pixels) == set(area_px.index) and set(pixels) <= set(CROPS)
    for crop, expected in area_px.items():
        assert pixels[crop] == pytest.approx(expected, rel=0.15), crop


def test_finetune_leaves_the_lenders_archive_untouched(finetuned) -> None:
    result, out, before, after = finetuned
    assert result.exit_code == 0, result.output
    assert after == before
    assert any((out.parent / "cache").iterdir()), "the composite cache goes beside the weights"


def test_labels_without_imagery_is_refused(small_archive: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train-segmenter", "--labels", str(small_archive / "parcels.parquet")],
    )
    assert result.exit_code == 2
    assert "--labels and --imagery go together" in result.output
