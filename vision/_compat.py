"""Make ``segmentation_models_pytorch`` importable beside the CPU torch wheel.

smp imports timm, which imports torchvision. The torchvision wheel that resolves next to the
CPU ``torch==2.13.0`` is a CUDA build whose ``_C`` extension cannot load; torchvision then
registers fake kernels for ``torchvision::nms`` / ``torchvision::qnms`` at import time and
fails with ``RuntimeError: operator torchvision::nms does not exist``.

:func:`ensure_torchvision_ops` tries to load ``torchvision/_C`` itself (without importing
torchvision); when that fails it defines the two operator schemas with :mod:`torch.library`
so the import succeeds. smp and timm then work fully; ``torchvision.ops`` / ``torchvision.io``
stay unusable, and nothing in cropcredit needs them. See /work/shared/SETUP-NOTES.md.

This module must be imported before anything imports smp, timm or torchvision;
``vision/__init__.py`` imports it first.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os

import torch

log = logging.getLogger(__name__)

#: Schemas of the operators torchvision's ``_meta_registrations`` needs to exist.
_SCHEMAS: dict[str, str] = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
# Keep the Library objects alive: dropping them would unregister the schemas.
_LIBS: list[torch.library.Library] = []
_DONE = False


def _op_exists(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
    except RuntimeError:
        return False
    return True


def _load_torchvision_c() -> bool:
    """Try to load torchvision's ``_C`` extension without importing torchvision."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for root in spec.submodule_search_locations:
        for lib in glob.glob(os.path.join(root, "_C*.so")) + glob.glob(
            os.path.join(root, "_C*.pyd")
        ):
            try:
                torch.ops.load_library(lib)
                return True
            except (OSError, RuntimeError, ImportError) as exc:
                log.debug("torchvision._C failed to load (%s); registering op schemas", exc)
    return False


def ensure_torchvision_ops() -> bool:
    """Register stub ``torchvision::nms`` / ``qnms`` schemas if torchvision's ``_C`` can't load.

    Idempotent. Returns True when stub schemas were registered (torchvision.ops unusable),
    False when the real extension loaded or torchvision is absent.
    """
    global _DONE
    if _DONE:
        return bool(_LIBS)
    _DONE = True
    if importlib.util.find_spec("torchvision") is None:
        return False
    if _load_torchvision_c() and all(_op_exists(n) for n in _SCHEMAS):
        return False
    missing = [n for n in _SCHEMAS if not _op_exists(n)]
    if not missing:
        return False
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for name in missing:
        lib.define(_SCHEMAS[name])
    _LIBS.append(lib)
    log.debug("registered stub torchvision ops %s (torchvision._C unavailable)", missing)
    return True


ensure_torchvision_ops()
