"""A stage sent to a cluster says where it runs (`StagePlaced`): the fold keeps its node and
whether the node contains it, the row lists the nodes of running stages, the Jobs table shows
them from 170 columns."""

from __future__ import annotations

import json

from blut.cockpit.jobscolumns import row_cells
from blut.jobs.rows import job_row
from blut.jobs.store import JobSpec
from blut.status.events import JobStarted, JobSubmitted, StagePlaced, StageStarted, parse_line
from blut.status.jobstate import fold
from blut.status.writer import encode_line

J = "20261201-171547-0dec"


def events(*, contained: bool) -> list[object]:
    return [
        JobSubmitted(job=J, ts=1.0, name="smoke"),
        JobStarted(job=J, ts=2.0),
        StageStarted(job=J, stage="make", ts=3.0, unit=f"blut-{J}-make", launcher="ray"),
        StagePlaced(
            job=J,
            stage="make",
            ts=4.0,
            node="gpu-7",
            launcher="systemd" if contained else "bare",
            contained=contained,
        ),
    ]


def test_the_fold_keeps_the_node_and_its_containment() -> None:
    view = fold(J, events(contained=True))  # type: ignore[arg-type]
    assert (view.stages["make"].node, view.stages["make"].contained) == ("gpu-7", True)
    bare = fold(J, events(contained=False))  # type: ignore[arg-type]
    assert (bare.stages["make"].node, bare.stages["make"].contained) == ("gpu-7", False)
    again = fold(J, [*events(contained=True), StageStarted(job=J, stage="make", ts=5.0)])  # type: ignore[list-item]
    assert again.stages["make"].node is None  # a new launch is placed anew


def test_the_event_round_trips_through_the_stream() -> None:
    placed = events(contained=False)[-1]
    line = encode_line(placed)  # type: ignore[arg-type]
    assert json.loads(line)["event"] == "stage_placed"
    assert parse_line(line) == placed


def test_the_row_and_the_jobs_table_show_the_node() -> None:
    spec = JobSpec(id=J, name="smoke", argv=[], cwd="/", launcher="systemd", created=1.0)
    row = job_row(spec, fold(J, events(contained=True)), now=10.0)  # type: ignore[arg-type]
    assert row.nodes == ("gpu-7",) and row.to_json()["nodes"] == ["gpu-7"]
    assert str(row_cells(row, 170)["node"]) == "gpu-7"
    local = job_row(spec, fold(J, events(contained=True)[:3]), now=10.0)  # type: ignore[arg-type]
    assert local.nodes == () and str(row_cells(local, 170)["node"]) == "-"
