"""Recipes: the catalog grouped by category, and a launch form built from a recipe's schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Label, OptionList, Select, Static, Switch
from textual.widgets.option_list import Option

from blut.cockpit import recipeform
from blut.cockpit.recipeform import Field
from blut.cockpit.screens.base import StateScreen

if TYPE_CHECKING:
    from blut.jobs.recipes import RecipeDef


def _defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub:
            out[key] = sub["default"]
        elif sub.get("type") == "object":
            out[key] = _defaults(sub)
    return out


def reflow(description: str) -> str:
    """Join a docstring's hard-wrapped lines into paragraphs (the pane wraps them to fit);
    indented lines and list items keep their own line."""
    paragraphs = []
    for block in description.strip().split("\n\n"):
        out: list[str] = []
        for line in block.splitlines():
            if out and line.strip() and not line[:1].isspace() and line[:2] not in ("- ", "* "):
                out[-1] = f"{out[-1].rstrip()} {line.strip()}"
            else:
                out.append(line.rstrip())
        paragraphs.append("\n".join(out))
    return "\n\n".join(paragraphs)


def literals(text: str) -> Text:
    """``text`` with its ````literal```` spans (docstring markup) shown as code, not backticks."""
    parts = text.split("``")
    if len(parts) % 2 == 0:  # an unclosed span stays as typed
        parts[-2:] = ["``".join(parts[-2:])]
    out = Text()
    for index, part in enumerate(parts):
        out.append(part, style="bold cyan" if index % 2 else "")
    return out


def describe(recipe: RecipeDef) -> Text:
    """The catalog's detail pane for one recipe."""
    text = Text()
    text.append(recipe.name, style="bold")
    text.append(f"  ({recipe.category}, {recipe.backend})\n", style="dim")
    inputs = ", ".join(str(k) for k in recipe.inputs) or "nothing"
    text.append(f"takes {inputs} → makes {recipe.output}\n\n", style="cyan")
    text.append_text(literals(reflow(recipe.description)))
    stages = recipeform.sections(recipe.args_schema)
    if stages:
        text.append("\n\nstages: ", style="bold")
        text.append(", ".join(s or "(top level)" for s in stages))
    return text


class RecipesScreen(StateScreen):
    """Every recipe, grouped by category; Enter opens its launch form."""

    DEFAULT_CSS = """
    RecipesScreen #catalog {
        width: 40%; height: 1fr; text-wrap: nowrap; text-overflow: ellipsis;
    }
    RecipesScreen #detail { width: 1fr; height: 1fr; border: round $panel; padding: 0 1; }
    """
    HELP_TITLE = "Recipes"
    KEY_HELP = (
        ("↑ ↓", "pick a recipe (its description is on the right)"),
        ("enter", "open the recipe's launch form"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("enter", "open", "Form", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        from blut.jobs.recipes import by_category

        self.groups = by_category()
        self.recipes = {r.name: r for group in self.groups.values() for r in group}

    def compose(self) -> ComposeResult:
        yield Header()
        options: list[Option | None] = []
        for category, recipes in self.groups.items():
            options.append(Option(Text(category.upper(), style="bold"), disabled=True))
            for recipe in recipes:
                label = Text(f"  {recipe.name}")
                label.append(f"  {recipe.summary[:60]}", style="dim")
                options.append(Option(label, id=recipe.name))
        with Horizontal():
            yield OptionList(*options, id="catalog")
            with VerticalScroll(id="detail"):
                yield Static(id="detail-body")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "blut"
        self.sub_title = "recipes" + (
            " (readonly: launch disabled)" if self.cockpit.readonly else ""
        )
        catalog = self.query_one(OptionList)
        catalog.focus()
        for index in range(catalog.option_count):
            if not catalog.get_option_at_index(index).disabled:
                catalog.highlighted = index
                break
        self._show()

    @property
    def selected_recipe(self) -> RecipeDef | None:
        """The highlighted recipe."""
        catalog = self.query_one(OptionList)
        if catalog.highlighted is None:
            return None
        option_id = catalog.get_option_at_index(catalog.highlighted).id
        return self.recipes.get(option_id or "")

    def _show(self) -> None:
        recipe = self.selected_recipe
        body = self.query_one("#detail-body", Static)
        body.update(describe(recipe) if recipe else Text("no recipe selected", style="dim"))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        recipe = self.selected_recipe
        if recipe is not None:
            self.app.push_screen(RecipeFormScreen(recipe))

    def action_back(self) -> None:
        self.app.pop_screen()


def _widget_id(index: int) -> str:
    return f"f{index}"


class RecipeFormScreen(StateScreen):
    """A recipe's args as a form: one group per stage section, checked as you type.

    ``args``: prefill (a re-run: the job's args.json). Without it the form shows
    the schema defaults, then the resolved config layers (user and project
    config) once a worker has read them. Launch submits one job, or one per
    point of the sweep typed into number fields (``1e-3,1e-4``).
    """

    DEFAULT_CSS = """
    RecipeFormScreen #title { height: auto; padding: 0 1; background: $panel; }
    RecipeFormScreen #form { height: 1fr; padding: 0 1; }
    RecipeFormScreen .group { margin-top: 1; text-style: bold; color: $accent; }
    RecipeFormScreen .row { height: 1; }
    RecipeFormScreen .row Label { width: 22; }
    RecipeFormScreen .row Input { width: 1fr; }
    RecipeFormScreen .row Input:focus, RecipeFormScreen .row Select:focus > SelectCurrent {
        background: $accent 30%; text-style: bold;
    }
    RecipeFormScreen .row:focus-within Label { color: $accent; text-style: bold reverse; }
    RecipeFormScreen .row Select { width: 1fr; }
    RecipeFormScreen .row Switch { border: none; height: 1; padding: 0; }
    RecipeFormScreen .hint { height: auto; padding-left: 22; color: $text-muted; }
    RecipeFormScreen .hint.error { color: $error; }
    RecipeFormScreen #bar { height: 3; padding: 0 1; }
    RecipeFormScreen #summary { width: 1fr; height: 3; content-align: left middle; }
    RecipeFormScreen #bar Button { margin-left: 1; }
    """
    HELP_TITLE = "Recipe form"
    KEY_HELP = (
        ("tab / shift+tab", "next / previous field"),
        ("a,b,c", "in a number field: sweep it (one job per value)"),
        ("ctrl+l", "launch (hidden with --readonly)"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+l", "launch", "Launch", priority=True),
    ]

    def __init__(
        self,
        recipe: RecipeDef,
        args: Mapping[str, Any] | None = None,
        *,
        note: str = "",
        focus: str | None = None,
    ) -> None:
        """``focus``: the field (dotted key) the cursor starts on, when the form has it."""
        super().__init__()
        self.recipe = recipe
        self.focus_key = focus
        self.fields = recipeform.fields(recipe.args_schema)
        self.prefilled = args is not None
        self.base: dict[str, Any] = (
            dict(args) if args is not None else _defaults(recipe.args_schema)
        )
        self.note = note
        self.errors: dict[str, str] = {}
        self._shown: dict[str, str] = {}
        self.launching = False
        self.launched: list[str] = []
        """Ids of the jobs the last launch created."""

    # ---- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="title")
        groups = recipeform.sections(self.recipe.args_schema)
        with VerticalScroll(id="form"):
            current: str | None = None
            for index, field in enumerate(self.fields):
                if field.group != current:
                    current = field.group
                    about = groups.get(current, "")
                    heading = Text(current or "general")
                    if about:
                        heading.append(f"  {about}", style="dim italic")
                    yield Static(heading, classes="group")
                with Horizontal(classes="row"):
                    yield Label(field.name)
                    yield self._widget(index, field)
                yield Static(field.hint(), id=f"h{index}", classes="hint")
        with Horizontal(id="bar"):
            yield Static(id="summary")
            if not self.cockpit.readonly:
                yield Button("Launch (ctrl+l)", variant="success", id="launch")
            yield Button("Back (esc)", id="back")
        yield Footer()

    def _widget(self, index: int, field: Field) -> Input | Select[Any] | Switch:
        found, value = recipeform.lookup(self.base, field.path)
        wid = _widget_id(index)
        if field.kind == "boolean":
            return Switch(bool(value), id=wid, animate=False)
        if field.kind == "choice":
            options = [(str(c), c) for c in field.choices]
            chosen = value if found and value in field.choices else Select.NULL
            return Select(options, value=chosen, allow_blank=not found, id=wid, compact=True)
        text = recipeform.text_of(field, value) if found else ""
        self._shown[field.key] = text
        placeholder = "a,b,c for a sweep" if field.sweepable else field.kind
        return Input(text, placeholder=placeholder, id=wid, compact=True, select_on_focus=False)

    def on_mount(self) -> None:
        self.title = "blut"
        verb = "re-run" if self.prefilled else "launch"
        self.sub_title = f"{verb} {self.recipe.name}"
        head = Text()
        head.append(self.recipe.name, style="bold")
        head.append(f"  {self.recipe.summary}", style="dim")
        if self.note:
            head.append(f"\n{self.note}", style="cyan")
        if self.cockpit.readonly:
            head.append("\nreadonly: launching is disabled", style="yellow")
        self.query_one("#title", Static).update(head)
        for index, field in enumerate(self.fields):
            if field.kind not in ("boolean", "choice"):
                self._check(index, field)
        self._summarise()
        if self.fields:
            keys = [field.key for field in self.fields]
            start = keys.index(self.focus_key) if self.focus_key in keys else 0
            widget = self.query_one(f"#{_widget_id(start)}")
            widget.focus()
            self.call_after_refresh(widget.scroll_visible, animate=False)
        if not self.prefilled:
            self._resolve_layers()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "launch" and self.cockpit.readonly:
            return False
        return super().check_action(action, parameters)

    # ---- values --------------------------------------------------------------------

    @work(thread=True, group="recipe-layers", exit_on_error=False)
    def _resolve_layers(self) -> None:
        """Read the user/project config layers (hydra, omegaconf: a worker)."""
        from blut.jobs.errors import JobsError

        try:
            resolved = self.recipe.resolve()[0]
        except JobsError:
            return
        self.app.call_from_thread(self._apply_layers, resolved)

    def _apply_layers(self, resolved: Mapping[str, Any]) -> None:
        if not self.is_mounted:
            return
        self.base = dict(resolved)
        for index, field in enumerate(self.fields):
            found, value = recipeform.lookup(resolved, field.path)
            if not found:
                continue
            widget = self.query_one(f"#{_widget_id(index)}")
            if isinstance(widget, Input):
                text = recipeform.text_of(field, value)
                if widget.value == self._shown.get(field.key) and widget.value != text:
                    self._shown[field.key] = text
                    widget.value = text

    def _check(self, index: int, field: Field) -> list[Any] | None:
        widget = self.query_one(f"#{_widget_id(index)}")
        values: list[Any] | None = None
        problem: str | None = None
        if isinstance(widget, Input):
            try:
                values = recipeform.parse(field, widget.value)
            except ValueError as exc:
                problem = str(exc)
        elif isinstance(widget, Switch):
            values = [widget.value]
        else:
            select = cast("Select[Any]", widget)
            if select.is_blank():
                problem = None if field.nullable else "pick a value"
                values = [None] if field.nullable else None
            else:
                values = [select.value]
        self._set_problem(index, field, problem)
        return values

    def _set_problem(self, index: int, field: Field, problem: str | None) -> None:
        hint = self.query_one(f"#h{index}", Static)
        if problem:
            self.errors[field.key] = problem
            hint.update(Text(problem))
            hint.add_class("error")
        else:
            self.errors.pop(field.key, None)
            hint.update(field.hint())
            hint.remove_class("error")

    def values(self) -> dict[str, list[Any]] | None:
        """Every field's value list (several: a sweep axis); None while a field is wrong."""
        out: dict[str, list[Any]] = {}
        for index, field in enumerate(self.fields):
            values = self._check(index, field)
            if values is not None:
                out[field.key] = values
        return None if self.errors else out

    def _summarise(self, values: dict[str, list[Any]] | None = None) -> None:
        summary = self.query_one("#summary", Static)
        if self.errors:
            n = len(self.errors)
            summary.update(Text(f"{n} field{'s' if n > 1 else ''} to fix", style="bold red"))
            return
        if values is None:
            values = {}
        axes = recipeform.axes_text(values)
        if axes:
            jobs = 1
            for v in values.values():
                jobs *= len(v)
            summary.update(Text(f"sweep {axes}: {jobs} jobs", style="bold cyan"))
        else:
            summary.update(Text("1 job", style="dim"))

    def _index(self, widget_id: str | None) -> int | None:
        if widget_id is None or not widget_id.startswith("f"):
            return None
        try:
            return int(widget_id[1:])
        except ValueError:
            return None

    def on_input_changed(self, event: Input.Changed) -> None:
        index = self._index(event.input.id)
        if index is not None:
            self._check(index, self.fields[index])
            self._summarise(self.values())

    def on_select_changed(self, event: Select.Changed) -> None:
        index = self._index(event.select.id)
        if index is not None:
            self._check(index, self.fields[index])
            self._summarise(self.values())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()
        elif event.button.id == "back":
            self.action_back()

    # ---- launch --------------------------------------------------------------------

    def action_launch(self) -> None:
        if self.cockpit.readonly:
            self.notify("readonly: launching is disabled", severity="warning")
            return
        if self.launching:
            return
        values = self.values()
        self._summarise(values)
        if values is None:
            first = next(i for i, f in enumerate(self.fields) if f.key in self.errors)
            self.query_one(f"#{_widget_id(first)}").focus()
            self.notify(f"fix {len(self.errors)} field(s) first", severity="error")
            return
        try:
            points = recipeform.points(self.base, values, self.fields)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        self.launching = True
        self.query_one("#summary", Static).update(
            Text(f"submitting {len(points)} job{'s' if len(points) > 1 else ''}…", style="yellow")
        )
        self._submit(points)

    @work(thread=True, group="recipe-launch", exit_on_error=False)
    def _submit(self, points: list[dict[str, Any]]) -> None:
        """Submit one job per point (a worker: it starts units); every point is validated
        before any is submitted."""
        from blut.containment.errors import ContainmentError
        from blut.containment.select import containment_requested
        from blut.jobs.api import PartialSubmit, submit_points
        from blut.jobs.config import ConfigError
        from blut.jobs.errors import JobsError

        call = self.app.call_from_thread
        try:
            done = submit_points(
                self.cockpit.store, self.recipe, points, contained=containment_requested()
            )
        except ConfigError as exc:
            call(self._rejected, exc.problems)
            return
        except PartialSubmit as exc:
            call(self._failed, str(exc))
            return
        except (JobsError, ContainmentError, OSError) as exc:
            call(self._failed, str(exc))
            return
        warnings = [done.warning] if done.warning else []
        call(self._launched, [job.id for job in done.jobs], done.sweep, warnings)

    def _rejected(self, problems: list[str]) -> None:
        self.launching = False
        keys = [f.key for f in self.fields]
        loose = []
        for problem in problems:
            key = recipeform.problem_field(problem, keys)
            if key is None:
                loose.append(problem)
                continue
            index = keys.index(key)
            self._set_problem(index, self.fields[index], problem.split(":", 1)[-1].strip())
        self._summarise()
        if loose:
            self.notify("\n".join(loose), severity="error", title="invalid args")

    def _failed(self, message: str) -> None:
        self.launching = False
        self._summarise()
        self.notify(f"launch failed: {message}", severity="error", timeout=10)

    def _launched(self, jobs: list[str], sweep: str | None, warnings: list[str]) -> None:
        self.launching = False
        self.launched = jobs
        for warning in warnings:
            self.notify(warning, severity="warning", timeout=10)
        if sweep is not None:
            self.notify(f"sweep {sweep}: {len(jobs)} jobs submitted")
        else:
            self.notify(f"job {jobs[0]} ({self.recipe.name}) submitted")
        self.cockpit.open_launched(jobs[0])

    def action_back(self) -> None:
        self.app.pop_screen()


__all__ = ["RecipeFormScreen", "RecipesScreen", "describe"]
