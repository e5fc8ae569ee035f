"""vision._compat makes segmentation_models_pytorch importable beside the CPU torch wheel."""

from __future__ import annotations

import subprocess
import sys


def test_smp_imports_in_fresh_interpreter() -> None:
    code = (
        "import vision, segmentation_models_pytorch as smp; "
        "m = smp.Unet('resnet18', encoder_depth=3, decoder_channels=(16, 8, 8), "
        "encoder_weights=None, in_channels=4, classes=3); print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_ensure_is_idempotent() -> None:
    from vision import _compat

    first = _compat.ensure_torchvision_ops()
    assert _compat.ensure_torchvision_ops() == first
