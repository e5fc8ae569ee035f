"""Sentinel Hub calls are throttled by a tag concurrency limit on a real (test) Prefect server.

Four task runs that each hold "a Sentinel Hub call" for a while are submitted at once on a
4-thread runner, under the flows' own :func:`flows.tasks.imagery_tags`; the limit is set
with the ``cropcredit sentinelhub-limit`` command. Each run records when its call started
and ended: with the limit at 1 no two calls overlap; untagged, or without the limit, they do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.task_runners import ThreadPoolTaskRunner
from typer.testing import CliRunner

from flows import tasks
from flows.cli import app
from flows.settings import SeasonParams, SourceParams

CALLS = 4
CALL_S = 0.8
Interval = tuple[float, float]


@task(name="fake-sentinelhub-call")
def _call(i: int) -> Interval:
    started = time.monotonic()
    time.sleep(CALL_S)
    return started, time.monotonic()


@flow(name="fetch-scenes", task_runner=ThreadPoolTaskRunner(max_workers=CALLS))
def _fetch(source: str) -> list[Interval]:
    with tasks.imagery_tags(SourceParams(source=source)):  # type: ignore[arg-type]
        futures = [_call.submit(i) for i in range(CALLS)]
    return [f.result() for f in futures]


def _overlaps(intervals: list[Interval]) -> int:
    """How many calls started before the previous one (in start order) ended."""
    ordered = sorted(intervals)
    return sum(b[0] < a[1] for a, b in zip(ordered, ordered[1:], strict=False))


def _limit() -> int | None:
    with get_client(sync_client=True) as client:
        try:
            return client.read_concurrency_limit_by_tag(tasks.SENTINELHUB_TAG).concurrency_limit
        except ObjectNotFound:
            return None


def _drop_limit() -> None:
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_concurrency_limit_by_tag(tasks.SENTINELHUB_TAG)


@pytest.fixture
def no_limit(prefect_harness: None) -> Iterator[None]:
    """The test server without a ``sentinelhub`` limit, before and after the test."""
    _drop_limit()
    yield
    _drop_limit()


def test_with_limit_1_sentinelhub_calls_never_overlap(no_limit: None) -> None:
    result = CliRunner().invoke(app, ["sentinelhub-limit", "1"])
    assert result.exit_code == 0, result.output
    assert _limit() == 1

    started = time.monotonic()
    calls = _fetch("sentinelhub")
    took = time.monotonic() - started

    assert len(calls) == CALLS
    assert _overlaps(calls) == 0, sorted(calls)
    assert took >= CALLS * CALL_S


def test_untagged_calls_overlap_under_the_same_limit(no_limit: None) -> None:
    tasks.set_concurrency_limit(tasks.SENTINELHUB_TAG, 1)
    calls = _fetch("local")  # not Sentinel Hub: no tag, so the limit does not apply
    assert _overlaps(calls) >= 1, sorted(calls)


def test_without_a_limit_sentinelhub_calls_overlap(no_limit: None) -> None:
    calls = _fetch("sentinelhub")
    assert _overlaps(calls) >= 1, sorted(calls)


def test_a_limit_of_2_never_lets_three_calls_run_together(no_limit: None) -> None:
    tasks.set_concurrency_limit(tasks.SENTINELHUB_TAG, 2)
    calls = _fetch("sentinelhub")
    points = sorted([(s, 1) for s, _ in calls] + [(e, -1) for _, e in calls])
    running, most = 0, 0
    for _, delta in points:
        running += delta
        most = max(most, running)
    # Prefect polls for a free slot with backoff, so whether two calls of 0.8 s happen to
    # overlap is timing; that a third never joins them is the limit
    assert 1 <= most <= 2, sorted(calls)


def test_the_flows_tag_their_sentinelhub_task_runs_and_set_the_limit(
    no_limit: None, small_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.season import onboard

    monkeypatch.setenv("HOME", str(tmp_path))  # never read a real sentinelhub profile
    params = SeasonParams(
        parcels=small_archive / "parcels.parquet",
        farmers=small_archive / "farmers.csv",
        imagery={"source": "sentinelhub", "archive": tmp_path, "cache_dir": tmp_path / "c"},
        out=tmp_path / "out",
        sentinelhub_concurrency=3,
    )
    state = onboard(params, return_state=True)
    assert state.is_completed(), state
    assert _limit() == 3

    flow_run_id: UUID = state.state_details.flow_run_id  # type: ignore[assignment]
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    tags = {r.name.rsplit("-", 1)[0]: set(r.tags) for r in runs}
    assert tags["prepare-source"] == {tasks.SENTINELHUB_TAG}
    assert tasks.SENTINELHUB_TAG not in tags["read-parcels"]


def test_local_sources_are_not_tagged() -> None:
    with tasks.imagery_tags(SourceParams(source="local")) as tagged:
        assert tagged is None
    assert SeasonParams().sentinelhub_concurrency is None
    with pytest.raises(ValueError, match="expected 1 or more"):
        tasks.set_concurrency_limit(tasks.SENTINELHUB_TAG, 0)
