"""Cache: every entry (size, age, last use, producing job), the space it takes against the
job folders, and pruning with a preview."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from blut.cockpit import fmt
from blut.cockpit.screens.base import StateScreen
from blut.cockpit.screens.dialogs import ConfirmScreen
from blut.jobs.quantities import short_size

if TYPE_CHECKING:
    from blut.jobs.cache import Entry, PruneReport
    from blut.status.usage import HomeUsage

AGES_EVERY = 5.0
"""Seconds between moving the AGE / LAST USED cells on."""
RELOAD_EVERY = 30.0
"""Seconds between re-reads of the index (new entries, prunes by other processes)."""

COLUMNS = (
    ("key", "KEY"),
    ("stage", "STAGE"),
    ("job", "JOB"),
    ("size", "SIZE"),
    ("age", "AGE"),
    ("used", "LAST USED"),
)


@dataclass(frozen=True)
class PruneRule:
    """What the user asked prune to remove (the arguments of `Cache.prune`)."""

    max_size: int | None = None
    older_than: float | None = None
    keep_last: int | None = None

    @property
    def empty(self) -> bool:
        """True when no rule was given (prune would remove nothing)."""
        return self.max_size is None and self.older_than is None

    def describe(self) -> str:
        """``larger than 2.0G, unused for 7d, keep the 3 newest``."""
        parts = []
        if self.max_size is not None:
            parts.append(f"down to {short_size(self.max_size)}")
        if self.older_than is not None:
            parts.append(f"unused for {fmt.duration(self.older_than)}")
        if self.keep_last:
            parts.append(f"keeping the {self.keep_last} newest")
        return ", ".join(parts) or "no rule"


@dataclass
class CacheListing:
    """What the Cache screen shows."""

    entries: list[Entry] = field(default_factory=list)
    total: int = 0
    pinned: set[str] = field(default_factory=set)
    missing: bool = False
    error: str | None = None
    usage: HomeUsage | None = None
    """Bytes on disk under BLUT_HOME: job folders against the cache."""


def read_cache(home: Path, *, create: bool) -> CacheListing:
    """The cache's entries and the space of jobs against cache (worker thread: opens its
    own index connection)."""
    from blut.jobs.api import home_usage
    from blut.jobs.cache import Cache, CacheError

    usage = home_usage(home)
    if not create and not (home / "cache" / "index.sqlite").is_file():
        return CacheListing(missing=True, usage=usage)
    try:
        cache = Cache(home)
    except (CacheError, OSError) as exc:
        return CacheListing(error=str(exc), usage=usage)
    try:
        return CacheListing(cache.entries(), cache.total_size(), cache.pinned(), usage=usage)
    finally:
        cache.close()


def prune_cache(home: Path, rule: PruneRule, *, dry_run: bool) -> PruneReport:
    """Run (or preview) a prune (worker thread)."""
    from blut.jobs.cache import Cache

    cache = Cache(home)
    try:
        return cache.prune(
            max_size=rule.max_size,
            older_than=rule.older_than,
            keep_last=rule.keep_last,
            dry_run=dry_run,
        )
    finally:
        cache.close()


def parse_rule(max_size: str, older_than: str, keep_last: str) -> tuple[PruneRule | None, str]:
    """The rule typed into the prune dialog, or None and what is wrong."""
    from blut.jobs.errors import UsageError
    from blut.jobs.quantities import parse_duration, parse_size

    try:
        size = parse_size(max_size) if max_size.strip() else None
        age = parse_duration(older_than) if older_than.strip() else None
    except UsageError as exc:
        return None, str(exc)
    keep = None
    if keep_last.strip():
        try:
            keep = int(keep_last)
        except ValueError:
            return None, f"keep last: {keep_last!r} is not a whole number"
        if keep < 0:
            return None, "keep last: must be 0 or more"
    rule = PruneRule(size, age, keep)
    if rule.empty:
        return None, "give a size limit and/or an age"
    return rule, ""


def describe_report(report: PruneReport) -> Text:
    """What a prune removed (or would remove)."""
    verb = "would remove" if report.dry_run else "removed"
    text = Text()
    n = len(report.removed)
    text.append(f"{verb} {n} entr{'y' if n == 1 else 'ies'}", style="bold")
    text.append(f", freeing {short_size(report.freed)} of {short_size(report.total_before)}")
    if report.pinned:
        text.append(f" · {report.pinned} pinned by running jobs stay", style="yellow")
    for entry in report.removed[:6]:
        text.append(f"\n  {entry.key[:12]}  {entry.stage or '-'}  {short_size(entry.size)}")
    if n > 6:
        text.append(f"\n  … and {n - 6} more", style="dim")
    return text


class PruneScreen(ModalScreen[PruneRule | None]):
    """Pick a prune rule and see what it would remove before confirming."""

    DEFAULT_CSS = """
    PruneScreen { align: center middle; }
    PruneScreen > Vertical {
        width: 70; height: auto; border: thick $warning; background: $surface; padding: 0 1;
    }
    PruneScreen .row { height: 1; margin-top: 1; }
    PruneScreen .row Label { width: 16; }
    PruneScreen .row Input { width: 1fr; }
    PruneScreen .hint { color: $text-muted; }
    PruneScreen #preview { height: auto; min-height: 3; margin-top: 1; }
    PruneScreen #buttons { height: 3; align: center middle; }
    PruneScreen Button { margin: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Back")]

    def __init__(self, home: Path) -> None:
        super().__init__()
        self.home = home
        self.rule: PruneRule | None = None
        self.preview: PruneReport | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Prune the cache (least recently used first)", classes="title")
            yield Label("enter: next field · on Prune…, enter asks to confirm", classes="hint")
            with Horizontal(classes="row"):
                yield Label("max total size")
                yield Input(placeholder="e.g. 10G", id="max-size", compact=True)
            with Horizontal(classes="row"):
                yield Label("unused for")
                yield Input(placeholder="e.g. 7d, 12h", id="older-than", compact=True)
            with Horizontal(classes="row"):
                yield Label("keep newest")
                yield Input(placeholder="e.g. 5", id="keep-last", compact=True)
            yield Static(Text("give a size limit and/or an age", style="dim"), id="preview")
            with Horizontal(id="buttons"):
                yield Button("Prune…", variant="error", id="prune", disabled=True)
                yield Button("Back (esc)", variant="primary", id="back")

    def on_mount(self) -> None:
        self.query_one("#max-size", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        rule, problem = parse_rule(
            self.query_one("#max-size", Input).value,
            self.query_one("#older-than", Input).value,
            self.query_one("#keep-last", Input).value,
        )
        self.rule = rule
        self.preview = None
        self.query_one("#prune", Button).disabled = True
        preview = self.query_one("#preview", Static)
        if rule is None:
            preview.update(
                Text(problem, style="red" if "invalid" in problem or ":" in problem else "dim")
            )
            return
        preview.update(Text(f"previewing ({rule.describe()})…", style="dim"))
        self._preview(rule)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.focus_next()

    @work(thread=True, exclusive=True, group="prune-preview", exit_on_error=False)
    def _preview(self, rule: PruneRule) -> None:
        try:
            report = prune_cache(self.home, rule, dry_run=True)
        except Exception as exc:  # CacheError, OSError, sqlite: shown, never a crash
            self.app.call_from_thread(self._show_error, str(exc))
            return
        self.app.call_from_thread(self._show_preview, rule, report)

    def _show_error(self, message: str) -> None:
        self.query_one("#preview", Static).update(Text(message, style="red"))

    def _show_preview(self, rule: PruneRule, report: PruneReport) -> None:
        if rule != self.rule:
            return  # typed on since
        self.preview = report
        self.query_one("#preview", Static).update(describe_report(report))
        self.query_one("#prune", Button).disabled = not report.removed

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "prune":
            self.action_prune()
        else:
            self.action_close()

    def action_prune(self) -> None:
        if self.rule is not None and self.preview is not None and self.preview.removed:
            self.dismiss(self.rule)

    def action_close(self) -> None:
        self.dismiss(None)


class CacheScreen(StateScreen):
    """The content-addressed stage cache of this BLUT_HOME."""

    DEFAULT_CSS = """
    CacheScreen #totals { height: 1; padding: 0 1; background: $panel; }
    CacheScreen #space { height: 1; padding: 0 1; background: $panel; }
    CacheScreen DataTable { height: 1fr; }
    """
    HELP_TITLE = "Cache"
    KEY_HELP = (
        ("P", "prune: pick a rule, preview what goes, then confirm (hidden with --readonly)"),
        ("ctrl+r", "read the index again (it is also re-read every 30 s; ages move every 5 s)"),
        ("home end g G", "first / last entry"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("P", "prune", "Prune…"),
        Binding("ctrl+r", "reload", "Reload"),
        Binding("home", "first", "Top", show=False, priority=True),
        Binding("end", "last", "Bottom", show=False, priority=True),
        Binding("g", "first", "Top", show=False),
        Binding("G", "last", "Bottom", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.listing: CacheListing | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("reading the cache index…", id="totals")
        yield Static("", id="space")
        table: DataTable[str | Text] = DataTable(
            id="entries", cursor_type="row", zebra_stripes=True
        )
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.title = "blut"
        self.sub_title = "cache" + (" (readonly)" if self.cockpit.readonly else "")
        self.query_one(DataTable).focus()
        self.action_reload()
        self.set_interval(AGES_EVERY, self._refresh_ages)
        self.set_interval(RELOAD_EVERY, self.action_reload)

    def action_reload(self) -> None:
        self._load()

    def action_first(self) -> None:
        self.query_one("#entries", DataTable).move_cursor(row=0, animate=False)

    def action_last(self) -> None:
        table = self.query_one("#entries", DataTable)
        table.move_cursor(row=table.row_count - 1, animate=False)

    def _age_cells(self, entry: Entry, now: float) -> tuple[str, str]:
        """The AGE and LAST USED cells of ``entry`` at ``now``."""
        age = fmt.duration(max(0.0, now - entry.created))
        return age, fmt.duration(max(0.0, now - entry.last_used)) + " ago"

    def _refresh_ages(self) -> None:
        """Move the AGE and LAST USED cells on (only those whose text changed)."""
        if self.listing is None or not self.is_mounted:
            return
        now = self.cockpit.clock()
        table = self.query_one("#entries", DataTable)
        for entry in self.listing.entries:
            age, used = self._age_cells(entry, now)
            if table.get_cell(entry.key, "age") != age:
                table.update_cell(entry.key, "age", age)
            if table.get_cell(entry.key, "used") != used:
                table.update_cell(entry.key, "used", used)

    @work(thread=True, exclusive=True, group="cache-read", exit_on_error=False)
    def _load(self) -> None:
        listing = read_cache(self.cockpit.home, create=not self.cockpit.readonly)
        self.app.call_from_thread(self.show, listing)

    def show(self, listing: CacheListing) -> None:
        """Render ``listing``."""
        self.listing = listing
        if not self.is_mounted:
            return
        now = self.cockpit.clock()
        table = self.query_one("#entries", DataTable)
        selected = None
        if 0 <= table.cursor_row < table.row_count:
            selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        table.clear()
        newest_first = sorted(listing.entries, key=lambda e: (-e.last_used, e.key))
        for e in newest_first:
            key = Text(e.key[:12])
            if e.key in listing.pinned:
                key.append(" pin", style="yellow")
            table.add_row(
                key,
                e.stage or "-",
                e.job or "-",
                short_size(e.size),
                *self._age_cells(e, now),
                key=e.key,
            )
        keys = [e.key for e in newest_first]
        if selected in keys:
            table.move_cursor(row=keys.index(selected), animate=False)
        self.query_one("#totals", Static).update(self.totals_line(listing))
        if listing.usage is not None:
            self.query_one("#space", Static).update(
                Text(f"on disk: {fmt.space(listing.usage)} (`blut jobs prune` frees jobs)")
            )

    def totals_line(self, listing: CacheListing) -> Text:
        """Entries, distinct objects, bytes, pins."""
        if listing.error:
            return Text(f"cache unreadable: {listing.error}", style="red")
        if listing.missing:
            return Text("no cache yet (no recipe stage has finished under this BLUT_HOME)")
        objects = len({e.hash for e in listing.entries})
        text = Text(f"{len(listing.entries)} entries, {objects} objects, ")
        text.append(short_size(listing.total), style="bold")
        if listing.pinned:
            text.append(f" · {len(listing.pinned)} pinned by running jobs", style="yellow")
        if self.cockpit.readonly:
            text.append(" · readonly", style="bold")
        return text

    def action_prune(self) -> None:
        if self.cockpit.readonly:
            self.notify("readonly: prune is disabled", severity="warning")
            return
        home = self.cockpit.home

        def confirmed(rule: PruneRule, yes: bool | None) -> None:
            if yes:
                self.notify("pruning…", timeout=2)
                self._prune(rule)

        def chosen(rule: PruneRule | None) -> None:
            if rule is None:
                return
            self.app.push_screen(
                ConfirmScreen(f"Prune the cache ({rule.describe()})? This deletes the files."),
                lambda yes: confirmed(rule, yes),
            )

        self.app.push_screen(PruneScreen(home), chosen)

    @work(thread=True, group="cache-prune", exit_on_error=False)
    def _prune(self, rule: PruneRule) -> None:
        try:
            report = prune_cache(self.cockpit.home, rule, dry_run=False)
        except Exception as exc:  # CacheError, OSError, sqlite: a toast, never a crash
            self.app.call_from_thread(self.notify, f"prune failed: {exc}", severity="error")
            return
        self.app.call_from_thread(self.notify, describe_report(report).plain.splitlines()[0])
        listing = read_cache(self.cockpit.home, create=True)
        self.app.call_from_thread(self.show, listing)

    def action_back(self) -> None:
        self.app.pop_screen()
