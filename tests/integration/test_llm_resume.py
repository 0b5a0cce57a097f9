"""A new `blut recipe run` of an llm recipe resumes where a killed job of the same config
stopped, in real units; the stage's log has no progress bars or printed dicts, and its
progress and speed are events the cockpit shows (Pilot, 80x24)."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("trl", reason="needs the llm extra: pip install 'blut[llm]'")

from textual.widgets import DataTable

from blut.cockpit.plot import Plot
from blut.cockpit.screens.job import JobScreen
from blut.jobs.cache import Cache
from blut.jobs.store import Job, JobStore
from blut.payload.llm.common import KILL_ENV
from blut.status.events import Log, Metric, Progress
from blut.status.jobstate import JobView
from blut.status.metrics import read_metrics
from blut.status.tailer import read_events
from tests.cockpit.conftest import make_app, wait_for
from tests.conftest import blut, wait_for_job

pytestmark = [pytest.mark.systemd, pytest.mark.anyio]

SETS = (
    "model.threads=1", "tokenize.examples=48", "sft.threads=1", "sft.max_steps=6",
    "sft.save_every=2", "sft.batch_size=4",
)  # fmt: skip


def run(home: Path, **env: str) -> str:
    sets = [a for s in SETS for a in ("--set", s)]
    result = blut(
        "recipe", "run", "llm-sft", "--detach", *sets, env={"BLUT_HOME": str(home), **env}
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@dataclass(frozen=True)
class Runs:
    """The killed job, the same recipe run again, its sft log and its final view."""

    home: Path
    killed: Job
    again: Job
    log: str
    view: JobView


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """A job killed (SIGKILL) after sft's checkpoint at step 4, then the same recipe again."""
    home = tmp_path_factory.mktemp("llm-resume") / "blut-home"
    store = JobStore(home)
    killed = store.get(run(home, **{KILL_ENV: "4"}))
    view = wait_for_job(killed, timeout=200)
    assert view.stages["sft"].state == "failed", view
    again = store.get(run(home))
    view = wait_for_job(again, timeout=200)
    log = again.log_path("sft").read_text()
    assert view.state == "succeeded", (view, log[-3000:])
    return Runs(home, killed, again, log, view)


def test_the_same_recipe_again_resumes_from_the_killed_jobs_checkpoint(
    jobs: Runs,
) -> None:
    killed, again, log = jobs.killed, jobs.again, jobs.log
    assert "sft: resuming from checkpoint-4" in log
    logs = [e.msg for e in read_events(again.paths.status) if isinstance(e, Log)]
    assert f"resuming from job {killed.id}'s checkpoints (same key; moved here)" in logs
    sft = again.dir / "stages" / "sft"
    table = read_metrics(sft / "metrics").to_pydict()
    assert table["step"] == [1, 2, 3, 4, 5, 6]
    tokens = table["num_tokens"]
    assert all(b > a for a, b in itertools.pairwise(tokens))
    model = Cache(jobs.home).object_path(jobs.view.stages["sft"].artifact or "")
    summary = json.loads((model / "train.json").read_text())
    assert summary["steps"] == 6 and summary["metrics"]["resumed_from_step"] == 4
    losses = table["loss"]
    assert summary["metrics"]["train_loss"] == pytest.approx(sum(losses) / 6, rel=1e-6)
    old = killed.dir / "stages" / "sft"
    assert not (old / "checkpoints").exists()  # moved, not copied
    assert read_metrics(old / "metrics").to_pydict()["step"] == [1, 2, 3, 4]  # its curve stays


def test_the_stage_log_has_no_bars_or_dicts_and_each_warning_once(
    jobs: Runs,
) -> None:
    log = jobs.log
    assert "\r" not in log and "it/s]" not in log
    assert "{'loss'" not in log and "{'train_runtime'" not in log
    warnings = [line for line in log.splitlines() if "Warning" in line]
    assert len(warnings) == len(set(warnings))
    assert all(line.startswith("warning: ") for line in warnings)


async def test_the_cockpit_shows_the_llm_stages_progress_and_speed(
    jobs: Runs, tmp_path: Path
) -> None:
    """The Job screen of the resumed job as it was mid-run: its real stream cut at a speed
    report before the last step."""
    again = jobs.again
    events = read_events(again.paths.status)
    assert [e.step for e in events if isinstance(e, Progress)][-1] == 6
    speed = [e.values for e in events if isinstance(e, Metric) and "tokens_per_s" in e.values]
    assert speed and speed[-1]["eta_s"] == 0
    home = tmp_path / "blut-home"
    folder = home / "jobs" / again.id
    shutil.copytree(again.dir, folder)
    (folder / "summary.json").unlink(missing_ok=True)
    lines = (folder / "status.jsonl").read_text().splitlines(keepends=True)
    cut = max(
        i
        for i, line in enumerate(lines)
        if json.loads(line).get("event") == "metric"
        and json.loads(line)["values"].get("eta_s", 0) > 0
    )
    (folder / "status.jsonl").write_text("".join(lines[: cut + 1]))
    cut_at = float(json.loads(lines[cut])["ts"])
    app = make_app(home, open_job=again.id, clock=lambda: cut_at)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, JobScreen))
        table = app.screen.query_one("#stages", DataTable)
        # the stage rows come a refresh after the screen: wait for sft's, then its eta
        await wait_for(pilot, lambda: "sft" in table.rows and "eta " in row_text(table, "sft"))
        assert "running" in row_text(table, "sft")
        title = str(app.screen.query_one("#metrics", Plot).border_title)
        assert re.search(r"step 5 · [0-9.]+k? tok/s", title) and "eta_s" not in title
        shown = app.export_screenshot()  # what fits at 80 columns
        assert re.search(r"eta(&#160;|\s)[0-9.]+s", shown) and "tok/s" in shown


def row_text(table: DataTable[object], key: str) -> str:
    """The cells of ``table``'s row ``key`` as one string."""
    return " ".join(map(str, table.get_row(key)))
