"""Retention on real files: checkpoint trimming (both layouts), the [retention] policy, the
executor trimming a succeeded stage only, `jobs prune`'s selection, the doctor's space line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest

from blut.containment.doctor import check_space
from blut.containment.spec import Handle, Outcome, UnitSpec, UnitState
from blut.jobs.cache import Cache
from blut.jobs.errors import UsageError
from blut.jobs.keys import KeyParts
from blut.jobs.prune import JobsPruneRule, prune_jobs
from blut.jobs.retention import Retention, named_paths, retention_policy
from blut.jobs.store import Job, JobStore
from blut.status.checkpoints import checkpoints, trim
from blut.status.events import JobDone, JobFailed, JobStarted, JobSubmitted, StageStarted
from blut.status.usage import home_usage
from tests.cockpit.fakejobs import emit, make_job
from tests.unit.test_engine_executor import FakeLauncher, execute, smoke, write_output

MiB = 1 << 20


def quant_checkpoints(folder: Path, epochs: int, *, partial: int | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, epochs + 1):
        (folder / f"epoch-{epoch:04d}.pt").write_bytes(b"w" * 1000)
        (folder / f"epoch-{epoch:04d}.meta.json").write_text("{}")
    if partial is not None:  # a .pt whose meta was never written
        (folder / f"epoch-{partial:04d}.pt").write_bytes(b"w" * 1000)
    (folder / "best.pt").write_bytes(b"b" * 100)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---- trimming a checkpoints folder ------------------------------------------------


def test_trim_keeps_the_newest_complete_epoch_and_what_resume_needs(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    quant_checkpoints(folder, 4, partial=5)
    done = trim(folder, 1)
    assert names(folder) == ["best.pt", "epoch-0004.meta.json", "epoch-0004.pt"]
    assert done.kept == ["epoch-0004"]
    assert done.freed == 3 * 1002 + 1000  # epochs 1-3 and the incomplete 5
    assert [p.number for p in checkpoints(folder)] == [4]


def test_trim_the_hf_layout_keeps_its_fingerprint(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        (folder / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"x" * 500)
    (folder / "fingerprint").write_text("abc\n")
    done = trim(folder, 2)
    assert names(folder) == ["checkpoint-20", "checkpoint-30", "fingerprint"]
    assert done.kept == ["checkpoint-20", "checkpoint-30"] and done.freed == 500


def test_trim_to_none_removes_the_folder_but_not_what_others_name(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    quant_checkpoints(folder, 2)
    trim(folder, 0)
    assert not folder.exists()
    quant_checkpoints(folder, 3)
    named = folder / "epoch-0001.pt"
    done = trim(folder, 0, protected={named})
    assert names(folder) == ["epoch-0001.pt"] and done.protected == [named]
    done = trim(folder, 1, protected={folder})  # the whole folder is named: nothing goes
    assert done.removed == [] and names(folder) == ["epoch-0001.pt"]


# ---- the policy --------------------------------------------------------------------


def test_retention_policy_from_the_config_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    project = tmp_path / "project"
    project.mkdir()
    assert retention_policy(project) == Retention(checkpoints=1)
    (xdg / "blut").mkdir(parents=True)
    (xdg / "blut" / "config.toml").write_text("[retention]\ncheckpoints = 3\n")
    assert retention_policy(project).checkpoints == 3
    (project / "blut.toml").write_text("[retention]\ncheckpoints = 0\n")
    assert retention_policy(project).checkpoints == 0  # the project wins
    for bad, needle in [
        ("checkpoints = -1", "checkpoints must be a whole number"),
        ("checkpoints = true", "checkpoints must be a whole number"),
        ('checkpoints = "all"', "checkpoints must be a whole number"),
        ("keep = 1", "[retention] has no key 'keep'"),
    ]:
        (project / "blut.toml").write_text(f"[retention]\n{bad}\n")
        with pytest.raises(UsageError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            retention_policy(project)


def test_named_paths_finds_job_paths_anywhere_in_args(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    inside = jobs / "j1" / "stages" / "sft" / "checkpoints" / "checkpoint-20"
    args = {"model": {"path": str(inside), "n": 3}, "list": ["x", str(tmp_path / "data.csv")]}
    assert named_paths(args, jobs) == {inside}


# ---- the executor trims a succeeded stage, and only that ----------------------------


def writes_checkpoints(spec: UnitSpec) -> int:
    """A stage that checkpoints three epochs, then ends as ``write_output`` says."""
    stage_dir = Path(spec.env["BLUT_JOB_DIR"]) / "stages" / spec.env["BLUT_STAGE_NAME"]
    quant_checkpoints(stage_dir / "checkpoints", 3)
    return write_output(spec)


def test_a_succeeded_stage_keeps_the_newest_checkpoint_a_failed_one_all(tmp_path: Path) -> None:
    job, rc = execute(tmp_path, smoke(square__fail="true"), FakeLauncher(writes_checkpoints))
    assert rc == 1
    stages = job.dir / "stages"
    assert names(stages / "square" / "checkpoints") == [  # failed: a resume needs them all
        "best.pt",
        *(f"epoch-000{e}.{x}" for e in (1, 2, 3) for x in ("meta.json", "pt")),
    ]
    for succeeded in ("make", "cube"):
        assert names(stages / succeeded / "checkpoints") == [
            "best.pt",
            "epoch-0003.meta.json",
            "epoch-0003.pt",
        ]
    log = job.status_path.read_text()
    assert "checkpoints after success (keep 1): kept epoch-0003; removed epoch-0001" in log


def test_the_recorded_policy_decides_and_cache_named_paths_stay(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    plan = smoke()
    job = store.create(
        name=plan.name,
        argv=["x"],
        cwd=str(tmp_path),
        launcher="fake",
        stages=plan.order(),
        retain_checkpoints=0,
    )
    plan.save(job.plan_path)
    named = (job.dir / "stages" / "make" / "checkpoints" / "epoch-0002.pt").resolve()
    cache = Cache(tmp_path)  # another job's output refers to one of this job's checkpoints
    staging = tmp_path / "other-staging"
    staging.mkdir()
    (staging / "ref.json").write_text(json.dumps({"path": str(named)}))
    parts = KeyParts("tiny-model", ("prog",), 1, {}, {"path": str(named)}, {"path": "h"})
    cache.commit(parts, staging, job="other", stage="tiny-model")
    cache.close()
    _job, rc = execute(tmp_path, plan, FakeLauncher(writes_checkpoints), job)
    assert rc == 0
    assert names(job.dir / "stages" / "make" / "checkpoints") == ["epoch-0002.pt"]
    assert not (job.dir / "stages" / "cube" / "checkpoints").exists()  # keep 0: none


# ---- jobs prune: which jobs go -------------------------------------------------------


class Units:
    """The Launcher protocol's `find`/`state` over a set of unit names said to run."""

    kind = "systemd"

    def __init__(self, running: set[str] | None = None) -> None:
        self.running = running or set()

    def find(self, name: str, result_path: Path) -> Handle | None:
        return Handle(name, self.kind, result_path) if name in self.running else None

    def state(self, handle: Handle) -> UnitState:
        return UnitState("running")

    def launch(self, spec: UnitSpec) -> Handle:
        raise NotImplementedError

    def stop(self, handle: Handle) -> None:
        raise NotImplementedError

    def wait(self, handle: Handle, timeout: float | None = None) -> Outcome | None:
        raise NotImplementedError

    def memory_limit(self, handle: Handle) -> Literal["gone"]:
        return "gone"

    def close(self) -> None:
        pass


DAY = 86400.0
NOW = 1_800_000_000.0


def ended_job(
    home: Path, job_id: str, days_ago: float, state: str = "succeeded", size: int = MiB
) -> Job:
    job = make_job(home, job_id, name=f"{state}-{job_id[-4:]}")
    t = NOW - days_ago * DAY
    end = (
        JobDone(job=job.id, ts=t)
        if state == "succeeded"
        else JobFailed(job=job.id, ts=t, reason="exit", detail="stage main: exited with code 1")
    )
    emit(job, JobSubmitted(job=job.id, ts=t - 10, name=job.spec.name), end)
    (job.dir / "stages" / "main" / "log").write_bytes(b"l" * size)
    return job


def running(home: Path, job_id: str) -> Job:
    job = make_job(home, job_id)
    emit(
        job,
        JobSubmitted(job=job.id, ts=NOW - 40 * DAY, name="train"),
        JobStarted(job=job.id, ts=NOW - 40 * DAY),
        StageStarted(job=job.id, stage="main", ts=NOW - 40 * DAY, unit=f"blut-{job.id}-main"),
    )
    return job


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """Five jobs: succeeded 40, 35 and 1 day(s) ago, failed 50 days ago, one running."""
    home = tmp_path / "home"
    ended_job(home, "20250101-000000-f001", 50, "failed")
    ended_job(home, "20250102-000000-a040", 40)
    ended_job(home, "20250103-000000-a035", 35)
    ended_job(home, "20250104-000000-a001", 1)
    running(home, "20250105-000000-run1")
    return home


def prune(home: Path, rule: JobsPruneRule, units: Units | None = None, **kw: bool) -> list[str]:
    store = JobStore(home)
    report = prune_jobs(store, rule, lambda job: units or Units(), None, now=NOW, **kw)
    return [j.id[-4:] for j in report.removed]


def left(home: Path) -> list[str]:
    return [i[-4:] for i in JobStore(home).ids()]


def test_prune_older_than_keeps_recent_and_running_jobs(home: Path) -> None:
    assert prune(home, JobsPruneRule(older_than=30 * DAY), dry_run=True) == [
        "f001",
        "a040",
        "a035",
    ]
    assert left(home) == ["f001", "a040", "a035", "a001", "run1"]  # a dry run removes nothing
    store = JobStore(home)
    report = prune_jobs(store, JobsPruneRule(older_than=30 * DAY), lambda j: Units(), None, now=NOW)
    assert [j.id[-4:] for j in report.removed] == ["f001", "a040", "a035"]
    assert all(j.size >= MiB for j in report.removed) and report.freed >= 3 * MiB
    assert report.active == ["20250105-000000-run1"]
    assert left(home) == ["a001", "run1"]
    assert not any((home / "jobs" / ".trash").iterdir())


def test_prune_keep_last_and_failed(home: Path) -> None:
    assert prune(home, JobsPruneRule(failed=True), dry_run=True) == ["f001"]
    assert prune(home, JobsPruneRule(keep_last=2), dry_run=True) == ["f001", "a040"]
    assert prune(home, JobsPruneRule(keep_last=0)) == ["f001", "a040", "a035", "a001"]
    assert left(home) == ["run1"]  # running: never


def test_prune_leaves_a_finished_job_whose_units_still_run(home: Path) -> None:
    busy = Units({"blut-20250102-000000-a040-main"})
    assert prune(home, JobsPruneRule(keep_last=0), busy) == ["f001", "a035", "a001"]
    assert left(home) == ["a040", "run1"]


def test_prune_leaves_a_job_whose_folder_the_cache_names(home: Path) -> None:
    named = home / "jobs" / "20250103-000000-a035" / "stages" / "main" / "log"
    cache = Cache(home)
    staging = home / "staging"
    staging.mkdir()
    (staging / "ref.json").write_text("{}")
    cache.commit(KeyParts("ref", ("p",), 1, {}, {"path": str(named)}), staging, job="x", stage="r")
    report = prune_jobs(
        JobStore(home), JobsPruneRule(older_than=30 * DAY), lambda j: Units(), cache, now=NOW
    )
    cache.close()
    assert [j.id[-4:] for j in report.removed] == ["f001", "a040"]
    assert report.in_use == ["20250103-000000-a035"]
    assert named.exists()


def test_prune_leaves_a_job_whose_folder_a_running_job_reads(home: Path) -> None:
    model = home / "jobs" / "20250102-000000-a040" / "stages" / "main"
    running = home / "jobs" / "20250105-000000-run1"
    (running / "args.json").write_text(json.dumps({"model": {"path": str(model)}}))
    report = prune_jobs(JobStore(home), JobsPruneRule(keep_last=0), lambda j: Units(), None)
    assert report.in_use == ["20250102-000000-a040"] and model.is_dir()
    assert left(home) == ["a040", "run1"]


# ---- the space line ------------------------------------------------------------------


def test_doctor_and_usage_report_jobs_against_cache(home: Path) -> None:
    use = home_usage(home)
    assert use.job_count == 5 and 4 * MiB <= use.jobs < 5 * MiB and use.cache == 0
    (home / "cache" / "objects" / "abc").mkdir(parents=True)
    (home / "cache" / "objects" / "abc" / "out.bin").write_bytes(b"c" * (2 * MiB))
    check = check_space(home)
    assert check.status == "ok"
    assert check.summary.startswith("jobs 4.0 MiB in 5 folder(s), cache 2.0 MiB")
    assert check.detail == {"jobs": use.jobs, "job_count": 5, "cache": 2 * MiB}
