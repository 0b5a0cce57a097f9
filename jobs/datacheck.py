"""Preflight: check the LLM data files a plan reads before its job is submitted.

The stages ``tokenize``, ``prefs`` and ``prompts`` read a ``source`` file; the
first `records.PREFLIGHT` records of each are checked here with the same code
the stage checks every record with (`blut.status.records`); chat data is
refused when the plan's model dir has no chat template (a dir without
tokenizer_config.json is left to the stage), and unpaired preference rows
when the plan trains on pairs (reward, or dpo with a loss other than kto). A
problem is one line (`DataProblem`, exit 2) and no job is created.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blut.jobs.errors import JobsError, UsageError
from blut.jobs.external import reference_hash, table_file
from blut.jobs.outputs import REF_FILE
from blut.jobs.plan import Plan
from blut.status import records


class DataProblem(UsageError):
    """A data file a stage would read is malformed (one line: file, line, field)."""


def _program(argv: tuple[str, ...]) -> str:
    return argv[-1] if len(argv) >= 3 and argv[-2] == "blut.payload" else ""


def _model_dir(value: str, objects: Path | None) -> Path | None:
    """The dir a ``model.path``/``model.tokenizer`` value names: a path, or a cached ``lm``
    output (``artifact:<hash>``; one that only names a dir in ``ref.json``: that dir)."""
    digest = reference_hash(value)
    if digest is None:
        return Path(value)
    if objects is None:
        return None
    folder = objects / digest
    try:
        ref = json.loads((folder / REF_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return folder
    return Path(str(ref.get("tokenizer") or ref.get("path") or folder))


def _template_dir(plan: Plan, objects: Path | None) -> Path | None:
    """The tokenizer dir of a user model dir or job output in the plan (None: the tiny
    model, or unknown)."""
    for stage in plan.stages.values():
        if _program(stage.argv) != "tiny-model":
            continue
        if stage.args.get("chat_template", "model") != "model":  # a template is chosen
            return None
        if stage.args.get("path"):
            path = _model_dir(str(stage.args.get("tokenizer") or stage.args["path"]), objects)
            return path if path is not None and path.is_dir() else None
    return None


def _needs_pairs(plan: Plan) -> str | None:
    """The stage of ``plan`` that trains on preference pairs only (reward, or dpo not kto)."""
    for name, stage in plan.stages.items():
        program, loss = _program(stage.argv), stage.args.get("loss", "dpo")
        if program == "reward" or (program == "dpo" and loss not in records.UNPAIRED_LOSSES):
            return name
    return None


def _check(program: str, args: Any, no_template: bool, plan: Plan, objects: Path | None) -> None:
    source = str(args.get("source", "toy"))
    if program not in ("tokenize", "prefs", "prompts") or source == "toy":
        return
    digest = reference_hash(source)
    if digest is not None:  # a job's output: its one table
        if objects is None:
            return
        try:
            source = str(table_file(objects / digest))
        except JobsError as exc:
            raise records.RecordError(f"{program}.source: {exc}") from None
    found = records.read(Path(source), records.PREFLIGHT)
    if program == "tokenize":
        chat = args.get("format", "chat") == "chat"
        for record in found:
            records.sft_example(source, record, chat)
        what = "format 'chat'"
    elif program == "prefs":
        checked = records.preferences(source, found)
        trainer = _needs_pairs(plan)
        if checked.unpaired and trainer is not None:
            raise records.RecordError(f"{source}: {records.needs_pairs(trainer)}")
        chat, what = checked.chat, "chat preference pairs"
    else:
        chat = bool(args.get("chat", True))
        listed = [records.prompt(source, record, chat)[0] for record in found]
        chat = chat or any(isinstance(value, list) for value in listed)
        what = records.CHAT_PROMPTS
    if chat and no_template:
        raise records.RecordError(records.no_template(program, what))


def preflight(plan: Plan, objects: Path | None = None) -> None:
    """Check every data file ``plan`` reads (a job output's table in the cache's
    ``objects`` folder too); the first problem → `DataProblem`."""
    tokenizer = _template_dir(plan, objects)
    no_template = tokenizer is not None and records.has_chat_template(tokenizer) is False
    for stage in plan.stages.values():
        try:
            _check(_program(stage.argv), stage.args, no_template, plan, objects)
        except records.RecordError as exc:
            raise DataProblem(str(exc)) from None
