"""A sweep of bad input over every verb: one line on stderr, the right exit code, no traceback,
and nothing else lost (the other jobs still list). Needs no user manager: every case fails
before a unit would start, or works on jobs written straight into the store."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from blut.jobs.errors import UsageError
from blut.jobs.quantities import parse_duration, parse_size
from blut.jobs.store import Job, JobStore, blut_home
from blut.status.errors import SchemaError
from blut.status.events import (
    JobDone,
    JobStarted,
    JobSubmitted,
    StageDone,
    StageStarted,
    parse_line,
)
from tests.conftest import blut

RUN = ["run", "--detach", "--uncontained"]
SMOKE = ["recipe", "run", "smoke", "--dry-run"]


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], needle: str, code: int = 2
) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("blut: error: "), result.stderr
    assert needle in lines[0], result.stderr


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """Config files, good and bad, in one folder."""
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "bad.toml").write_text("not = [toml")
    (folder / "list.json").write_text("[1, 2]")
    (folder / "latin1.toml").write_bytes(b"\xff\xfe = 1\n")
    (folder / "adir").mkdir()
    return folder


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        # sizes and durations
        ([*RUN, "--memory-max", "0", "--", "true"], "invalid size '0'"),
        ([*RUN, "--name", "two\nlines", "--", "true"], "invalid job name"),
        (["data", "show", "synthetic", "--tickers", "999999999"], "Invalid value"),
        ([*RUN, "--memory-max", "-1G", "--", "true"], "invalid size '-1G'"),
        ([*RUN, "--memory-max", "1e3", "--", "true"], "invalid size '1e3'"),
        ([*RUN, "--memory-max", "12Q", "--", "true"], "invalid size '12Q'"),
        ([*RUN, "--memory-max", "99999999999999999999P", "--", "true"], "at most 1024P"),
        ([*RUN, "--memory-max", "9" * 400, "--", "true"], "at most 1024P"),
        ([*RUN, "--timeout", "nan", "--", "true"], "invalid duration 'nan'"),
        ([*RUN, "--timeout", "inf", "--", "true"], "invalid duration 'inf'"),
        ([*RUN, "--timeout", "1e3", "--", "true"], "invalid duration '1e3'"),
        ([*RUN, "--timeout", "99999999999999999999d", "--", "true"], "at most 100 years"),
        ([*RUN, "--timeout", "0.0001ms", "--", "true"], "at least 1ms"),
        ([*RUN, "--timeout", "1h 30m", "--", "true"], "invalid duration"),
        (["cache", "prune", "--max-size", "-1G"], "invalid size '-1G'"),
        (["cache", "prune", "--older-than", "-5d"], "invalid duration '-5d'"),
        (["cache", "prune", "--keep-last", "abc"], "Invalid value for '--keep-last'"),
        # --set / --sweep grammar, types, keys
        ([*SMOKE, "--set", "a.b"], "--set a.b:"),
        ([*SMOKE, "--set", "=1"], "--set =1: missing key"),
        ([*SMOKE, "--set", "a..b=1"], "--set a..b=1:"),
        ([*SMOKE, "--set", "make.count=[1,2"], "--set make.count=[1,2:"),
        ([*SMOKE, "--set", "make.count='abc"], "--set make.count='abc:"),
        ([*SMOKE, "--set", 'make.count="x'], '--set make.count="x:'),
        ([*SMOKE, "--set", "make.count=abc"], "make.count: expected integer"),
        ([*SMOKE, "--set", "make.cnt=3"], "did you mean 'count'?"),
        ([*SMOKE, "--set", "~nope"], "no key nope to delete"),
        ([*SMOKE, "--set", "make.sleep=nan"], "make.sleep: expected a finite number"),
        ([*SMOKE, "--set", "make.count=1,2"], "this is a sweep"),
        ([*SMOKE, "--sweep", "=1,2"], "--sweep =1,2: missing key"),
        ([*SMOKE, "--sweep", "make.count=range(0,0)"], "the sweep has no values"),
        ([*SMOKE, "--sweep", "make.count="], "make.count: expected integer"),
        ([*SMOKE, "--sweep", "~make.count"], "a sweep cannot delete a key"),
        ([*SMOKE, "--sweep", "make.sleep=1,inf"], "make.sleep: expected a finite number"),
        (
            ["recipe", "run", "quant-train", "--dry-run", "--set", "train.memory_max=" + "9" * 30],
            "train.memory_max: expected an integer from -2**63 to 2**63-1",
        ),
        # names
        (["recipe", "show", "smok"], "did you mean 'smoke'?"),
        (["recipe", "run", "nope"], "no such recipe"),
        (["recipe", "list", "--category", "nope"], "no category 'nope'"),
        (["train", "--method", "nope"], "unknown method 'nope'"),
        (["train", "--method", "sft", "--model", "/nonexistent", "--dry-run"], "no such directory"),
        (["data", "show", "nope"], "no data set 'nope'"),
        (["plan", "inspect", "nope"], "no such job"),
        (["plan", "resume", "nope"], "no such job"),
        (["cache", "explain", "nope", "make"], "no such job"),
        (["log", "../x"], "invalid job id"),
        (["log", ""], "invalid job id"),
        (["log", "n" * 100_000], "job reference too long (100000 characters; at most 200)"),
        ([*RUN, "--name", "n" * 100_000, "--", "true"], "job name too long (100000 characters"),
        # deleting a stage's whole args, huge numbers
        ([*SMOKE, "--set", "~make"], "~make: make is a whole section of arguments"),
        (
            ["recipe", "run", "quant-train", "--dry-run", "--set", "~train"],
            "~train: train is a whole section of arguments",
        ),
        ([*SMOKE, "--set", "make.seed=" + "9" * 5000], "(5010 characters): number too large"),
        ([*SMOKE, "--sweep", "make.seed=1," + "9" * 5000], "number too large"),
        ([*SMOKE, "--set", "make.seed=" + "9" * 20], "make.seed: expected an integer from"),
        ([*SMOKE, "--sweep", "make.count=range(0,1000000)"], "more than 1000 values"),
        # the job's environment
        ([*RUN, "--env", "1X", "--", "true"], "'1X' is not a variable name"),
        ([*RUN, "--env", "BLUT_JOB_ID=x", "--", "true"], "blut sets BLUT_JOB_ID itself"),
        ([*RUN, "--env-clear", "--env", "BLUT_TEST_UNSET", "--", "true"], "not set here"),
        ([*SMOKE, "--env", "BLUT_TEST_UNSET"], "--env BLUT_TEST_UNSET: not set here"),
    ],
)
def test_usage_error(blut_home: Path, args: list[str], needle: str) -> None:
    assert_one_line_error(blut(*args), needle)


def test_bad_input_writes_nothing(blut_home: Path) -> None:
    cases = [
        [*RUN, "--name", "n" * 100_000, "--", "true"],
        [*RUN, "--env", "1X", "--", "true"],
        ["recipe", "run", "smoke", "--detach", "--set", "~make"],
        ["recipe", "run", "smoke", "--detach", "--set", "make.seed=" + "9" * 5000],
        ["recipe", "run", "smoke", "--detach", "--set", "make.seed=" + "9" * 20],
    ]
    for args in cases:
        assert blut(*args).returncode == 2
    assert not list((blut_home / "jobs").glob("*"))  # no job folder, so no unit either


def test_config_errors_are_all_listed(blut_home: Path) -> None:
    args = ["recipe", "run", "quant-train", "--detach", "--set", "train.lrr=1"]
    result = blut(*args, "--set", "train.epochs=x", "--set", "~nope")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "blut: error: train.lrr=1: unknown key train.lrr (did you mean 'lr'?)",
        "blut: error: ~nope: no key nope to delete",
        'blut: error: train.epochs: expected integer, given "x" (string)',
    ]
    assert not list((blut_home / "jobs").glob("*"))


HUGE = "x" * 100_000


@pytest.mark.parametrize(
    "args",
    [
        ["recipe", "show", HUGE],
        ["recipe", "run", HUGE],
        ["recipe", "list", "--category", HUGE],
        ["jobs", "--format", HUGE],
        ["cache", "prune", "--max-size", HUGE],
        ["cache", "prune", "--keep-last", "9" * 5000],
        ["data", "show", HUGE],
        ["data", "show", "/tmp/" + HUGE],
        ["train", "--method", HUGE],
        ["train", "--method", "sft", "--model", HUGE, "--dry-run"],
        [*RUN, "--timeout", HUGE, "--", "true"],
        [*RUN, "--", HUGE],
        [*RUN, "--", "/" + HUGE],
        [*RUN, "--env", HUGE, "--", "true"],
        ["cancel", "--yes", HUGE],
        ["--open", HUGE],
        [*SMOKE, "--config", HUGE],
        [*SMOKE, "--set", HUGE],
        [*SMOKE, "--set", f"make.{HUGE}=1"],
        [*SMOKE, "--set", f"make.count={HUGE}"],
        [*SMOKE, "--sweep", f"make.count=1,{HUGE}"],
    ],
    ids=lambda args: " ".join(a[:12] for a in args),
)
def test_huge_input_is_one_short_line(blut_home: Path, args: list[str]) -> None:
    result = blut(*args)
    assert result.returncode == 2, result.stderr[-500:]
    assert len(result.stderr.splitlines()) == 1 and len(result.stderr) < 400, result.stderr[:500]
    assert result.stderr.startswith("blut: error: ") and not result.stdout


def test_a_long_command_runs_and_is_recorded_whole(blut_home: Path) -> None:
    argv = ["printf", "%s\n", "y" * 3000, "z" * 3000]
    result = blut("run", "--uncontained", "--", *argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == argv[2:]
    [job] = JobStore(blut_home).all()
    assert job.spec.argv == argv
    submitted = parse_line(job.status_path.read_text().splitlines()[0])
    assert isinstance(submitted, JobSubmitted)
    assert submitted.argv == ["printf", "%s\n", "y" * 3000, "… (1 more)"]


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("missing.toml", "cannot read (No such file or directory)"),
        ("bad.toml", "invalid TOML"),
        ("list.json", "expected a table of args"),
        ("adir", "cannot read (Is a directory)"),
        ("latin1.toml", "not UTF-8 text"),
    ],
)
def test_bad_config_file(blut_home: Path, files: Path, name: str, needle: str) -> None:
    assert_one_line_error(blut(*SMOKE, "--config", str(files / name)), needle)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (b"recipes = 3\n", "[recipes] must be a table"),
        (b"[recipes]\nsmoke = 3\n", "[recipes.smoke] must be a table"),
        (b"\xff\xfe", "not UTF-8 text"),
    ],
)
def test_bad_user_config(blut_home: Path, tmp_path: Path, text: bytes, needle: str) -> None:
    (tmp_path / "xdg" / "blut").mkdir(parents=True)
    (tmp_path / "xdg" / "blut" / "config.toml").write_bytes(text)
    result = blut(*SMOKE, env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert_one_line_error(result, needle)


def test_blut_home_is_a_file(tmp_path: Path) -> None:
    home = tmp_path / "file"
    home.write_text("precious")
    for args in (["jobs"], [*RUN, "--", "true"], ["cache", "ls"]):
        assert_one_line_error(blut(*args, env={"BLUT_HOME": str(home)}), "cannot create BLUT_HOME")
    assert home.read_text() == "precious"


def test_blut_home_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real permissions cannot stop root (the test user here), so ask os.access to say no.
    monkeypatch.setenv("BLUT_HOME", str(tmp_path))
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(UsageError, match="is not writable"):
        blut_home()


def test_recipe_show_every_recipe(blut_home: Path) -> None:
    listing = blut("recipe", "list", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    for recipe in json.loads(listing.stdout):
        result = blut("recipe", "show", recipe["name"])
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    shown = blut("recipe", "show", "quant-train").stdout
    assert "train.memory_max" in shown and "string|integer" in shown


# -- sizes and durations, in process -----------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["nan", "inf", "1e3", "1_000", "99999999999999999999d", "9" * 400, "0.0001ms"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["1025P", "99999999999999999999P", "9" * 400])
def test_parse_size_rejects_what_systemd_cannot_take(text: str) -> None:
    with pytest.raises(UsageError, match="at most 1024P"):
        parse_size(text)


def test_limits_still_accept_normal_values() -> None:
    assert parse_size("1024P") == 1 << 60
    assert parse_duration("1ms") == 0.001
    assert parse_duration("90") == 90.0


# -- damaged job folders -----------------------------------------------------------------------


def finished_job(store: JobStore, name: str, *extra: str) -> Job:
    """A `blut run` job that succeeded (bare launcher: no unit is asked about it)."""
    job = store.create(name=name, argv=["true"], cwd="/", launcher="bare")
    job.emit(JobSubmitted(job=job.id, name=name, argv=["true"]))
    job.emit(JobStarted(job=job.id, launcher="bare"))
    job.emit(StageStarted(job=job.id, stage="main", unit="u", launcher="bare", memory_max=1 << 20))
    with job.status_path.open("a") as fh:
        for line in extra:
            fh.write(line.replace("JOB", job.id) + "\n")
    job.emit(StageDone(job=job.id, stage="main", seconds=0.1, peak_mem=1000))
    job.emit(JobDone(job=job.id))
    return job


BAD_LINES = [
    '{"v":1,"ts":1,"job":"JOB","stage":"main","event":"resources","memory_bytes":"lots"}',
    '{"v":1,"ts":1,"job":"JOB","stage":"main","event":"stage_done","peak_mem":"y"}',
    '{"v":1,"ts":1,"job":"JOB","stage":"main","event":"stage_started","memory_max":"abc"}',
    '{"v":1,"ts":1,"job":"JOB","stage":"main","event":"stage_started","gpus":"x"}',
    '{"v":1,"ts":1,"job":"JOB","stage":null,"event":"job_failed","detail":3}',
    '{"v":1,"ts":1,"job":"JOB","stage":"main","event":"metric","values":[1,2]}',
    "garbage",
    '{"v":1,"ts":"soon","job":"JOB","event":"job_done"}',
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_wrongly_typed_event_is_garbage(line: str) -> None:
    with pytest.raises(SchemaError):
        parse_line(line.replace("JOB", "j"))


def test_non_finite_numbers_as_written_still_parse() -> None:
    line = '{"v":1,"ts":1,"job":"j","stage":"s","event":"stage_done","seconds":"nan"}'
    assert isinstance(parse_line(line), StageDone)
    metric = '{"v":1,"ts":1,"job":"j","stage":"s","event":"metric","values":{"loss":"nan"}}'
    assert parse_line(metric).kind == "metric"


def test_damaged_status_and_job_json_hide_no_other_job(blut_home: Path) -> None:
    store = JobStore(blut_home)
    good = [finished_job(store, f"good{i}") for i in range(2)]
    damaged = finished_job(store, "damaged", *BAD_LINES)
    broken = finished_job(store, "broken")
    (broken.dir / "job.json").write_text('{"id": "oops"')
    before = damaged.status_path.read_bytes()
    for args in (["jobs", "--all"], ["--once"]):
        result = blut(*args)
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    listed = blut("jobs", "--all", "--format", "json")
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {good[0].id, good[1].id, damaged.id}
    assert rows[damaged.id]["state"] == "succeeded"
    assert rows[damaged.id]["peak_memory_bytes"] == 1000
    assert damaged.status_path.read_bytes() == before  # readers never rewrite history
    assert_one_line_error(blut("log", broken.id), "unreadable job.json", code=1)
    assert "warning: skipped a job" in listed.stderr and "unreadable job.json" in listed.stderr


@pytest.mark.parametrize(
    ("plan", "needle"),
    [
        ("[]", "not a JSON object"),
        ('{"version": 1, "name": "x", "stages": 5}', "malformed plan"),
        ('{"version": 1, "name": "x", "stages": [', "unreadable plan"),
    ],
)
def test_damaged_plan_json(blut_home: Path, plan: str, needle: str) -> None:
    store = JobStore(blut_home)
    job = finished_job(store, "recipe-ish")
    job.plan_path.write_text(plan)
    for args in (["plan", "inspect", job.id], ["cache", "explain", job.id, "main"]):
        assert_one_line_error(blut(*args), needle, code=1)
    # resume refuses before it starts an executor that would only crash on it
    before = job.status_path.read_bytes()
    assert_one_line_error(blut("plan", "resume", job.id), needle, code=1)
    assert job.status_path.read_bytes() == before
    assert not job.driver_log.exists()


def test_ambiguous_prefix(blut_home: Path) -> None:
    store = JobStore(blut_home)
    first, second = finished_job(store, "a"), finished_job(store, "b")
    common = first.id[:8]  # the date: both ids start with it
    assert second.id.startswith(common)
    for args in (["log", common], ["cancel", "--yes", common], ["plan", "inspect", common]):
        assert_one_line_error(blut(*args), "is ambiguous")
    assert_one_line_error(blut("log", first.id, "nostage"), "has no stage 'nostage'")
    assert_one_line_error(blut("cancel", "--yes", first.id), "has already ended")


def test_explain_a_stage_not_reached_yet(blut_home: Path) -> None:
    from blut.jobs.cache import Cache
    from blut.jobs.planview import explain
    from blut.jobs.recipes import find

    recipe = find("smoke")
    [args] = recipe.resolve(sets=(), sweeps=(), config_file=None)
    plan = recipe.build(args)
    job = JobStore(blut_home).create(
        name="smoke", argv=["x"], cwd="/", launcher="bare", stages=plan.order()
    )
    plan.save(job.plan_path)
    job.emit(JobStarted(job=job.id, launcher="bare"))
    assert explain(Cache(blut_home), job, "total") == ["stage total: not reached yet (job running)"]
    job.emit(JobDone(job=job.id))
    assert "never reached" in explain(Cache(blut_home), job, "total")[0]


def test_broken_cache_index_refuses_before_submitting(blut_home: Path) -> None:
    index = blut_home / "cache" / "index.sqlite"
    index.parent.mkdir(parents=True)
    index.write_bytes(b"this is not a database" * 100)
    assert_one_line_error(blut("recipe", "run", "smoke", "--detach"), "not a database", code=1)
    assert not list((blut_home / "jobs").glob("*/job.json"))


def test_train_dataset_folder_is_named_as_such(blut_home: Path, tmp_path: Path) -> None:
    assert_one_line_error(
        blut("train", "--method", "sft", "--dataset", str(tmp_path), "--dry-run"), "is a folder"
    )
