"""`RecipeDef`: a named, documented way to build a plan from validated args.

`blut.jobs.config` (hydra, omegaconf, jsonschema) is imported only when args are
resolved or validated, so listing and showing recipes stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blut.jobs.artifact import Kind
from blut.jobs.plan import Plan, PlanError

if TYPE_CHECKING:
    from blut.jobs.config import Layer


@dataclass(frozen=True)
class RecipeDef:
    """A recipe: what it takes and makes, its args schema, and ``compile(args) -> Plan``.

    ``backend`` says what runs the stages (``python``, ``torch``, ...);
    ``inputs``/``output`` are the artifact kinds the recipe consumes and
    produces, which is what makes two recipes swappable.
    """

    name: str
    description: str
    category: str
    backend: str
    inputs: tuple[Kind, ...]
    output: Kind
    args_schema: Mapping[str, Any]
    compile: Callable[[Mapping[str, Any]], Plan]

    @property
    def summary(self) -> str:
        """The first line of the description."""
        return self.description.strip().partition("\n")[0]

    def defaults(self) -> dict[str, Any]:
        """The args with every schema default filled in."""
        from blut.jobs import config

        return config.defaults_from_schema(self.args_schema)

    def resolve(
        self,
        *,
        sets: Sequence[str] = (),
        sweeps: Sequence[str] = (),
        config_file: Path | None = None,
        cwd: Path | None = None,
        environ: Mapping[str, str] = os.environ,
        base: Layer | None = None,
    ) -> list[dict[str, Any]]:
        """Validated args for each job to run (see `blut.jobs.config.resolve`)."""
        from blut.jobs import config

        return config.resolve(
            self.name,
            self.args_schema,
            sets=sets,
            sweeps=sweeps,
            config_file=config_file,
            cwd=cwd,
            environ=environ,
            base=base,
        )

    def build(self, args: Mapping[str, Any]) -> Plan:
        """Validate ``args`` and compile them; the plan must end in the recipe's output kind."""
        from blut.jobs import config

        config.validate(args, self.args_schema)
        plan = self.compile(args)
        ends = {plan.stages[s].output for s in plan.outputs}
        if ends != {self.output}:
            found = ", ".join(sorted(str(k) for k in ends))
            raise PlanError(f"recipe {self.name}: plan ends in {found}, not {self.output}")
        return plan
