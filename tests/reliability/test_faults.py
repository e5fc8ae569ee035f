"""Flaky imagery services, a locked or vanished ledger, a corrupt disk cache (group ``faults``).

The imagery faults are injected by the loopback server of tests/geo (its ``drop`` fault closes
the socket mid-response); the first test checks that fault really cuts a response short.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
import requests

from eval.reliability_cases import Case, Context, cases

PARAMS = [
    pytest.param(
        c,
        id=c.name,
        marks=[m for m, on in ((pytest.mark.network, c.network), (pytest.mark.slow, c.slow)) if on],
    )
    for c in cases("faults")
]


@pytest.mark.network
def test_the_drop_fault_cuts_the_response_short(ctx: Context) -> None:
    with ctx.loopback() as (server, imagery):
        url = f"{server.stac_url}/search"
        server.inject("/stac/search", "drop", method="POST")
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.post(url, json={"datetime": "2026-04-01T00:00:00Z/.."}, timeout=5)
        cog = f"{server.url}/cogs/{imagery.scenes[0].scene_id}/nir.tif"
        server.inject("/cogs/", "drop", method="HEAD")
        with pytest.raises(requests.ConnectionError):
            requests.head(cog, timeout=5)
        assert requests.head(cog, timeout=5).status_code == 200
        answer = requests.post(url, json={"datetime": "2026-04-01T00:00:00Z/.."}, timeout=5)
        assert answer.status_code == 200 and answer.json()["numberMatched"] == 4  # 3 days, 4 tiles
        assert dt.date(2026, 4, 5).isoformat() in answer.text


@pytest.mark.parametrize("case", PARAMS)
def test_fault_case(case: Case, check: Callable[[Case], str]) -> None:
    check(case)
