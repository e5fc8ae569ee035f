"""Model cards (markdown) of the crop-type segmenter.

:func:`write_card` (``SEGMENTER_CARD.md`` beside the shipped weights, written by
:func:`vision.train.train_and_save`): data and split contract, legend, metrics per stage date,
real-parcel scores, how to rebuild. :func:`write_finetune_card` (written by
:func:`vision.finetune.finetune_and_save`): the base model, the lender's data, how to rebuild.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from geo.types import CROPS
from vision.dataset import STAGE_DATES

if TYPE_CHECKING:
    from vision.train import TrainResult


def _data_lines(meta: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """The card's data section: generated regions, real parcels and the split contract."""
    lines = [
        f"Generated scenes (`geo.synth`, season {cfg['season']}, western-France crop mix): "
        f"{cfg['n_regions']} training regions of {cfg['size_px']} x {cfg['size_px']} px "
        f"(seeds {meta['train_seeds'][0]}..{meta['train_seeds'][-1]}), "
        f"{cfg['n_calib_regions']} calibration and {cfg['n_test_regions']} test regions "
        "(disjoint seeds), composited with `geo.composite.composite_dekads`; training sees "
        f"random as_of dekads (half near the stage dates), random {cfg['patch']} px crops, "
        "flips and rotations.",
    ]
    counts = meta.get("real_train_counts") or {}
    if not counts:
        lines += ["", "No real parcels (the shared data was absent): generated scenes only."]
    else:
        lines += [
            "",
            f"Real parcels: WorldCereal France 2023 (`{Path(str(cfg['real_samples'])).name}`, "
            "LPIS labels via `data/legend.csv`), the `train` part of THE SPLIT CONTRACT "
            "(`vision.realdata`: `geo.samples.split_by_block` of all 500 samples into train / "
            "cal / test = 0.6 / 0.15 / 0.25 by 10 km blocks, seed 0, `ignore` labels dropped "
            "after the split). France `test` and all of Belgium 2021 are never used for "
            "training or calibration.",
            "",
            f"- train ({sum(counts.values())} parcels): "
            + ", ".join(f"{c} {n}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])),
            f"- cal ({sum((meta.get('real_cal_counts') or {}).values())} parcels, temperature "
            "only): "
            + ", ".join(
                f"{c} {n}"
                for c, n in sorted(
                    (meta.get("real_cal_counts") or {}).items(), key=lambda kv: -kv[1]
                )
            ),
            "",
            f"Each training crop gets real series laid into its fields "
            f"(`vision.realdata.lay_series`: p = {cfg['p_real']} per field of a class with >= 3 "
            "series; smooth within-field gain, pixel noise, the series' own cloud gaps, mixed "
            f"edge pixels); {cfg['monthly_share']:.0%} of the crops and of the uniform images "
            "are turned into monthly extractions (`to_monthly`, as Belgium's). Each step also "
            f"feeds {cfg['uniform_batch']} uniform images ({cfg['uniform_side']} px, every "
            "pixel one real series with noise: how `vision.classify` presents a parcel) with "
            f"loss weight {cfg['uniform_weight']}; their classes are drawn with probability "
            f"~ count^{cfg['class_power']} so that grassland (~37 %) does not drown the rare "
            "classes.",
        ]
    lines += [
        "",
        f"Optimisation: {meta['steps']} steps of {cfg['batch']} crops"
        + (f" + {cfg['uniform_batch']} uniform images" if counts else "")
        + f", AdamW lr {cfg['lr']}, one-cycle schedule, cross-entropy, "
        + (
            f"warm-started from segmenter `{meta['init_version']}` (the previous shipped "
            "weights, trained on generated scenes only; see the git history of "
            "data/models/segmenter.pt). "
            if meta.get("init_version")
            else "from scratch. "
        )
        + _finish_text(meta, cfg)
        + "Temperatures (`vision.calibration`, LBFGS fits of the NLL at the six stage dates): "
        "for scenes, of the calibration regions' pixels"
        + (
            " and of France `cal` parcels (classify path, stage dates and season end), the two "
            "sources weighing half each; for series, of France `cal` parcels alone"
            if counts
            else ""
        )
        + "; for parcels, of the calibration regions' parcels (interior mean probabilities).",
    ]
    return lines


def _finish_text(meta: dict[str, Any], cfg: dict[str, Any]) -> str:
    """The finishing phase's sentence of the card ('' when the run had none)."""
    fin = meta.get("finish") or {}
    if not fin:
        return ""
    return (
        f"Finishing phase: {fin['steps']} of {fin['planned_steps']} steps "
        f"({cfg['finish_epochs']} epochs, {fin['seconds'] / 60:.1f} min) of "
        f"`vision.finetune.finetune` at lr {cfg['finish_lr']} with batch-norm frozen, on the "
        f"same training data as it is used: the {fin['series']} real train series as uniform "
        f"images and the first {fin['scenes']} generated training regions as they are. "
    )


def _real_metric_lines(meta: dict[str, Any]) -> list[str]:
    """The card's table of parcel scores on real series (classify path, whole season)."""
    real = meta.get("real_metrics") or {}
    if not real:
        return []
    names = {
        "france_train": "France 2023 train (seen in training)",
        "france_cal": "France 2023 cal (temperature only)",
        "france_test": "France 2023 test (held out)",
        "belgium": "Belgium 2021, monthly (held out, other country and year)",
    }
    lines = [
        "## Real parcels (classify path, whole season)",
        "`vision.classify.classify_series`: overall accuracy (OA) and macro-F1 over the "
        "classes present, and over classes with >= 10 parcels in the set (the issue's targets: "
        "OA >= 0.85, macro-F1 >= 0.75 on France test).",
        "",
        "| set | parcels | OA | macro-F1 | macro-F1 (>= 10) | per-class F1 (n) |",
        "|---|---|---|---|---|---|",
    ]
    for key, m in real.items():
        per = ", ".join(f"{c} {v['f1']:.2f} ({v['n']})" for c, v in m["per_class"].items())
        major = m["macro_f1_major"]
        lines.append(
            f"| {names.get(key, key)} | {m['n']} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} | "
            f"{'-' if major is None else f'{major:.3f}'} | {per} |"
        )
    return [*lines, ""]


def write_card(path: Path, result: TrainResult, weights: Path) -> None:
    """Write the model card (markdown) describing data, legend, metrics and how to rebuild."""
    meta = result.meta
    cfg = meta["train_config"]
    lines = [
        "# Crop-type segmenter (`data/models/segmenter.pt`)",
        "",
        f"Version `{result.segmenter.meta.get('version', '?')}`, trained "
        f"{meta['trained_at']} on {meta['machine']} (torch {meta['torch']}) in "
        f"{meta['train_seconds'] / 60:.1f} min ({meta['total_seconds'] / 60:.1f} min with data "
        f"and evaluation). Weights: {weights.stat().st_size / 1e6:.1f} MB.",
        "",
        "## What it does",
        "Per-pixel crop type at 10 m from a season of Sentinel-2 dekad composites "
        "`(T=36, C=10, H, W)` (`vision.model.model_input`: reflectance per band scaled to ~0-1, "
        "missing -> 0, plus 36 validity channels). Output: calibrated probabilities over the "
        "11 classes (`softmax(logits / T)`, T = "
        f"{result.segmenter.temperature:.3f} for pixels of a scene"
        + (
            f", {meta['series_temperature']:.3f} for parcel series classified by `vision.classify`"
            if "series_temperature" in meta
            else ""
        )
        + "); a parcel's probabilities are its interior pixels' mean sharpened as "
        f"`p ** (1 / {meta.get('parcel_temperature', 1.0):.3f})` and renormalised "
        "(`vision.calibration.parcel_probabilities`).",
        "",
        "Architecture: per-pixel 1x1 stem (396 -> "
        f"{cfg['model']['stem_channels']} channels) -> smp U-Net ({cfg['model']['encoder']}, "
        f"depth {cfg['model']['encoder_depth']}, decoder {tuple(cfg['model']['decoder_channels'])}"
        ") + full-resolution 1x1 pixel head; no pretrained (ImageNet) weights"
        + (
            f"; warm-started from segmenter `{meta['init_version']}`."
            if meta.get("init_version")
            else "; trained from scratch."
        ),
        "",
        "## Legend (index = class)",
        ", ".join(f"{i} {c}" for i, c in enumerate(CROPS)),
        "",
        "## Data",
        *_data_lines(meta, cfg),
        *(
            [
                "",
                f"**Stopped by the time budget** ({cfg['max_minutes']:.0f} min on a shared 2-core "
                f"machine): {meta['steps']} of {meta['planned_steps']} planned steps; the learning "
                "rate follows the share of the budget spent, so it was fully annealed, but a "
                "rerun on a quieter machine takes more steps and gives a different model.",
            ]
            if meta.get("planned_steps", meta["steps"]) > meta["steps"]
            else []
        ),
        "",
        *_real_metric_lines(meta),
        "## Metrics on the held-out generated test regions, by decision stage",
        "Composite up to the stage date (poitou-nord calendar). Parcel accuracy: class of "
        "highest mean probability over the parcel's interior pixels vs the true crop; parcel "
        "ECE of the parcel probabilities (mean sharpened by the parcel temperature), as the "
        "credit policy reads them. ECE: 15 bins.",
        "",
        "| stage | as_of | pixel acc | mIoU | ECE | parcel acc | parcel ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for stage, m in meta["metrics"].items():
        lines.append(
            f"| {stage} | {STAGE_DATES[stage]} | {m['pixel_accuracy']:.3f} | {m['miou']:.3f} | "
            f"{m['ece']:.3f} | {m['parcel_accuracy']:.3f} | {m['parcel_ece']:.3f} |"
        )
    if meta.get("notes"):
        lines += ["", str(meta["notes"])]
    harvest = meta["metrics"].get("harvest")
    if harvest:
        lines += [
            "",
            "Per-class IoU at harvest: "
            + ", ".join(f"{c} {v:.2f}" for c, v in harvest["iou"].items() if v is not None)
            + ".",
        ]
    if meta.get("area_error_by_stage"):
        lines += [
            "",
            "Planted-area interval: the assessment widens each parcel's interval by its crop's "
            "precision and recall in the error matrix of the stage, counted over the test "
            "regions' parcel interiors (the pixels it reads; `meta['area_error_by_stage']`, "
            "`Segmenter.error_matrix`). `python -m eval planted` measures the area error and "
            "how often the interval holds the truth.",
        ]
    lines += [
        "",
        "## Limits",
        "- Real parcels come from one region and year (western France 2023, 307 training "
        "parcels, ~37 % grassland); rare classes (non_crop, potato, spring cereals, soybean, "
        "rapeseed) have a handful of series or none, and Belgium shows how far accuracy falls "
        "out of region. Fine-tune on the lender's own labelled parcels "
        "(`cropcredit train-segmenter --samples FILE` or `--labels PARCELS --imagery DIR`) "
        "before relying on it; `python -m eval finetune` measures what that buys on Belgium.",
        "- Early stages (pre_sowing, sowing) cannot separate summer crops (bare soil): the "
        "probabilities say so, and the credit policy should hold on low confidence.",
        "- Each temperature is one number fitted over all stages. The parcel temperature is "
        "fitted on generated parcels only (no real scene has enough labelled parcels); in a "
        "region the model has not seen, parcel confidence can be too high: fine-tune first.",
        "",
        "## Reproduce",
        "```",
        "cropcredit train-segmenter --out data/models/segmenter.pt --seed 0"
        + (f" --init <segmenter {meta['init_version']}>" if meta.get("init_version") else ""),
        "```",
        *(
            [
                f"where `<segmenter {meta['init_version']}>` is the previous shipped "
                "data/models/segmenter.pt (git history; itself reproducible with the command "
                "above without --init on generated scenes only, as its card said)."
            ]
            if meta.get("init_version")
            else []
        ),
        f"(= `vision.train.train_and_save(Path('data/models/segmenter.pt'), seed={cfg['seed']})` "
        "with the `TrainConfig` saved in the weights' `meta['train_config']`; it reads "
        "`../shared/data/worldcereal/france2023_dekad_samples.parquet` when present and trains on "
        "generated scenes only, with a log line, when not. Deterministic for a seed, machine "
        "and thread count when the run completes its planned steps within the budget.) "
        "Evaluate: `python -m eval segmenter`, `python -m eval realcrops`, "
        "`python -m eval planted`, `python -m eval finetune`.",
        "",
    ]
    path.write_text("\n".join(lines))


def write_finetune_card(path: Path, result: TrainResult, weights: Path, command: str) -> None:
    """Model card of a fine-tuned segmenter: its base, the lender's data, how to rebuild."""
    ft = result.meta["finetune"]
    cfg = ft["config"]
    lines = [
        f"# Crop-type segmenter, fine-tuned (`{weights.name}`)",
        "",
        f"Version `{result.segmenter.meta.get('version', '?')}`, fine-tuned {ft['finetuned_at']} "
        f"from segmenter `{ft['init_version']}` in {ft['train_seconds'] / 60:.1f} min "
        f"({ft['steps']} of {ft['planned_steps']} steps, {cfg['epochs']} epochs, AdamW lr "
        f"{cfg['lr']}, one-cycle, batch-norm statistics frozen, temperature kept at "
        f"{result.segmenter.temperature:.3f}). Weights: {weights.stat().st_size / 1e6:.1f} MB.",
        "",
        "## Fine-tuning data",
    ]
    if "series" in ft["data"]:
        lines.append(
            "Labelled parcel series (uniform images, as `vision.classify` presents a parcel): "
            + ", ".join(f"{c} {n}" for c, n in ft["data"]["series"].items())
            + "."
        )
    if "scene_pixels" in ft["data"]:
        lines.append(
            "Labelled pixels inside parcels of the lender's imagery (others ignored): "
            + ", ".join(f"{c} {n}" for c, n in ft["data"]["scene_pixels"].items())
            + ". Pixels outside the parcels teach nothing"
            + (
                "; the replayed generated regions (below) keep the model's sense of background."
                if ft["data"].get("replay_regions")
                else ", so the model can lose some of its sense of background (non-crop): label "
                "a few woodland, water or built-up polygons as `non_crop` among the parcels to "
                "keep it."
            )
        )
    if ft["data"].get("replay_regions"):
        lines.append(
            f"Replayed in every step: generated training regions {ft['data']['replay_regions']} "
            f"({cfg['replay_px']} px, every pixel labelled, made on this machine), so that a few "
            "dozen parcels do not erase what the base model knew (`vision.finetune`)."
        )
    lines += [
        "",
        f"Loss (first batch, then per epoch): {ft['loss_history']}.",
        "",
        "The base model's training data, split contract and metrics are in its own card; its "
        "training metadata is kept in this file's `meta` (key `finetune` adds the above).",
        "No held-out measurement is made here: keep part of your parcels aside (spatially, "
        "e.g. `geo.samples.split_by_block`) and score them with `vision.classify`, as "
        "`python -m eval.finetune` does for Belgium.",
        "",
        "## Reproduce",
        "```",
        command,
        "```",
        "",
    ]
    path.write_text("\n".join(lines))
