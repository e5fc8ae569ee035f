"""What a run records so any limit can be reproduced: code, model, policy and table versions."""

from __future__ import annotations

import functools
import json
import subprocess
from importlib.metadata import version
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


def run_manifest(params: SeasonParams) -> dict[str, Any]:
    """Resolved parameters and the versions of everything that shapes a decision."""
    from scoring.pd_model import PDModel, load_shipped_pd
    from scoring.policy import PolicyConfig
    from scoring.tables import load_economics
    from vision.model import load_segmenter

    pd_model = PDModel.load(params.pd_model) if params.pd_model else load_shipped_pd()
    segmenter = load_segmenter(params.segmenter)
    return {
        "code_version": code_version(),
        "model_version": f"segmenter:{segmenter.version};pd:{pd_model.version}",
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
