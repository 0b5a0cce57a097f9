"""What every state-driven screen shares: access to the app, readonly gating."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from blut.cockpit.app import CockpitApp

MUTATING_ACTIONS = frozenset({"cancel", "cancel_stage", "resume", "rerun", "prune", "launch"})
"""Actions hidden (and refused) in readonly mode."""


class StateScreen(Screen[None]):
    """A screen that renders the app's state; :meth:`update_state` is called on new data."""

    HELP_TITLE: ClassVar[str] = ""
    """The heading of this screen's keys in the `?` help."""
    KEY_HELP: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(keys, what they do) for the `?` help: the keys of this screen only."""

    @property
    def cockpit(self) -> CockpitApp:
        """The app, typed."""
        return cast("CockpitApp", self.app)

    @property
    def selected_job_id(self) -> str | None:
        """The job the screen is about (or has selected), if any."""
        return None

    def update_state(self) -> None:
        """Re-render from the app's state (override)."""

    def on_screen_resume(self) -> None:
        self.update_state()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MUTATING_ACTIONS and self.cockpit.readonly:
            return False
        if action in ("cancel", "cancel_stage", "resume"):
            job = self.cockpit.state.jobs.get(self.selected_job_id or "")
            if job is None:
                return True
            if action == "resume":  # offered for a job that ended without succeeding
                if job.view.state == "succeeded":
                    return False
                return None if not job.view.terminal else True  # greyed while it runs
            return not job.view.terminal  # nothing left to cancel
        return True

    def action_cancel(self) -> None:
        job_id = self.selected_job_id
        if job_id is not None:
            self.cockpit.request_cancel(job_id)

    def action_resume(self) -> None:
        job_id = self.selected_job_id
        if job_id is not None:
            self.cockpit.request_resume(job_id)

    def action_rerun(self) -> None:
        job_id = self.selected_job_id
        if job_id is not None:
            self.cockpit.request_rerun(job_id)

    def action_pager(self) -> None:
        job_id = self.selected_job_id
        if job_id is not None:
            self.cockpit.open_pager(job_id, self.selected_stage())

    def action_replay(self) -> None:
        job_id = self.selected_job_id
        if job_id is not None:
            self.cockpit.open_replay(job_id)

    def selected_stage(self) -> str | None:
        """The stage the screen has selected (None: the job's current one)."""
        return None
