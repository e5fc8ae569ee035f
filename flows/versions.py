"""What a run records so any limit can be reproduced: code, model, policy and table versions."""

from __future__ import annotations

import functools
import json
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

from flows.settings import SeasonParams
from geo.paths import REPO_ROOT


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit when run from a checkout."""
    base = version("cropcredit")
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+g{sha}" if sha else base


@functools.lru_cache(maxsize=8)
def model_version(segmenter: Path | None, pd_model: Path | None) -> str:
    """``segmenter:<hash>;pd:<version>`` of the weights a run uses (loaded once per process)."""
    from scoring.pd_model import PDModel, load_shipped_pd
    from vision.model import load_segmenter

    pd_ = PDModel.load(pd_model) if pd_model else load_shipped_pd()
    return f"segmenter:{load_segmenter(segmenter).version};pd:{pd_.version}"


def run_manifest(params: SeasonParams) -> dict[str, Any]:
    """Resolved parameters and the versions of everything that shapes a decision."""
    from scoring.policy import PolicyConfig
    from scoring.tables import load_economics

    return {
        "code_version": code_version(),
        "model_version": model_version(params.segmenter, params.pd_model),
        "policy_version": PolicyConfig().version,
        "economics_version": load_economics(override=params.economics).version,
        "params": public_params(params),
    }


def public_params(params: SeasonParams) -> dict[str, Any]:
    """The run's parameters as JSON, with any password in the ledger URL masked: this is what
    goes into run.json, the ledger and the report (the live URL stays in memory only)."""
    from sqlalchemy.engine import make_url

    out = json.loads(params.model_dump_json())
    if params.ledger_url:
        out["ledger_url"] = make_url(params.ledger_url).render_as_string(hide_password=True)
    return out
