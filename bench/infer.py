"""Tiled inference speed and memory against one bare forward pass, on growing scenes.

    python -m bench.infer [--sizes 256 512 1024] [--threads 2]

For each square scene size S, in a fresh subprocess (so peak memory is per case): the shipped
segmenter (or a fresh one of the default config when no weights ship) runs on a random
(in_channels, S, S) input either through ``vision.infer.predict_proba`` (tile 256, overlap
32, batch 4, fp32 and bf16 autocast; tile 512, batch 1) or as ``model(x)`` on the whole
tensor. Reports pixels per second and the peak resident memory above the baseline (the
process with model and input loaded), from ``resource.getrusage``; bf16 also reports the
share of pixels whose argmax agrees with fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

MODES = ("tiled", "tiled_512", "tiled_bf16", "bare")


def _rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _rss_mb()


def one_case(size: int, mode: str, threads: int) -> dict[str, Any]:
    """Run one (size, mode) case in this process; returns its measurements."""
    import numpy as np
    import torch

    from vision.infer import predict_proba
    from vision.model import (
        DEFAULT_WEIGHTS,
        Segmenter,
        SegmenterConfig,
        build_model,
        load_segmenter,
    )

    torch.set_num_threads(threads)
    if DEFAULT_WEIGHTS.is_file():
        seg = load_segmenter()
    else:
        cfg = SegmenterConfig()
        seg = Segmenter(build_model(cfg).eval(), cfg)
    rng = np.random.default_rng(0)
    # float32 straight away: a float64 temporary would set the process's peak RSS before the run
    x = rng.random((seg.cfg.in_channels, size, size), dtype=np.float32)
    # warm up on a small input (first-call allocations are not the scene's cost)
    predict_proba(seg, x[:, :64, :64].copy())
    base = max(_current_rss_mb(), _rss_mb())  # peak so far: the run's own peak must exceed it
    t0 = time.perf_counter()
    agree = None
    if mode == "bare":
        model = seg.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        pad = -size % seg.cfg.size_multiple
        xt = torch.from_numpy(np.pad(x, ((0, 0), (0, pad), (0, pad)), mode="symmetric"))
        with torch.inference_mode():
            logits = model(xt[None].contiguous(memory_format=torch.channels_last))
            proba = torch.softmax(logits / seg.temperature, 1)[0, :, :size, :size].numpy()
    elif mode == "tiled_512":
        proba = predict_proba(seg, x, tile=512, overlap=32, batch=1)
    else:
        precision = "bf16" if mode == "tiled_bf16" else "fp32"
        proba = predict_proba(seg, x, precision=precision)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    peak = _rss_mb()
    if mode == "tiled_bf16":
        ref = predict_proba(seg, x)
        agree = float((ref.argmax(0) == proba.argmax(0)).mean())
    return {
        "size": size,
        "mode": mode,
        "seconds": round(seconds, 2),
        "mpx_per_s": round(size * size / seconds / 1e6, 3),
        "peak_above_base_mb": round(max(peak - base, 0.0), 0),
        "input_mb": round(x.nbytes / 2**20, 0),
        "bf16_argmax_agreement": agree,
    }


def run(sizes: tuple[int, ...] = (256, 512, 1024), threads: int = 2) -> str:
    """Markdown table of every (size, mode) case, each in its own subprocess."""
    rows = []
    for size in sizes:
        for mode in MODES:
            if mode == "tiled_bf16" and size > sizes[0]:
                continue  # bf16 is emulated (slow) on CPUs without native bf16: one size
            out = subprocess.run(
                [sys.executable, "-m", "bench.infer", "--case", str(size), mode, str(threads)],
                capture_output=True,
                text=True,
                check=False,
                timeout=1800,
            )
            if out.returncode != 0:
                rows.append({"size": size, "mode": mode, "error": out.stderr.strip()[-300:]})
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    lines = [
        f"predict_proba (tiled: tile 256, overlap 32, batch 4; tiled_512: tile 512, batch 1) "
        f"vs bare model(x); {threads} threads",
        "",
        "| size | mode | s | Mpx/s | peak RSS above base MB | input MB | bf16 argmax agree |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['size']} | {r['mode']} | error: {r['error']} | | | | |")
            continue
        agree = "" if r["bf16_argmax_agreement"] is None else f"{r['bf16_argmax_agreement']:.4f}"
        lines.append(
            f"| {r['size']} | {r['mode']} | {r['seconds']} | {r['mpx_per_s']} | "
            f"{r['peak_above_base_mb']:.0f} | {r['input_mb']:.0f} | {agree} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case", nargs=3, metavar=("SIZE", "MODE", "THREADS"))
    args = parser.parse_args(argv)
    if args.case:
        size, mode, threads = int(args.case[0]), args.case[1], int(args.case[2])
        sys.stdout.write(json.dumps(one_case(size, mode, threads)) + "\n")
        return 0
    sys.stdout.write(run(tuple(args.sizes), args.threads) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
