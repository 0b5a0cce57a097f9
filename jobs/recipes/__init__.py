"""The recipe catalog: every recipe blut ships, looked up by name or category."""

from __future__ import annotations

import difflib

from blut.jobs.errors import UsageError, clip
from blut.jobs.recipes import llm, quant, smoke
from blut.jobs.recipes.recipedef import RecipeDef

__all__ = ["RecipeDef", "all_recipes", "by_category", "find", "swap_candidates"]

_CATALOG: tuple[RecipeDef, ...] = (smoke.RECIPE, *quant.RECIPES, *llm.RECIPES)


def all_recipes() -> list[RecipeDef]:
    """Every recipe, sorted by category then name."""
    return sorted(_CATALOG, key=lambda r: (r.category, r.name))


def find(name: str) -> RecipeDef:
    """The recipe called ``name``; an unknown name is a `UsageError` with a suggestion."""
    for recipe in _CATALOG:
        if recipe.name == name:
            return recipe
    names = [r.name for r in _CATALOG]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(names))})"
    raise UsageError(f"no such recipe: {clip(name)!r}{hint}")


def by_category() -> dict[str, list[RecipeDef]]:
    """Recipes grouped by category (categories and recipes sorted)."""
    groups: dict[str, list[RecipeDef]] = {}
    for recipe in all_recipes():
        groups.setdefault(recipe.category, []).append(recipe)
    return groups


def swap_candidates(name: str) -> list[RecipeDef]:
    """Other recipes with the same input and output kinds: drop-in replacements for ``name``."""
    recipe = find(name)
    return [
        r
        for r in all_recipes()
        if r.name != name
        and sorted(r.inputs) == sorted(recipe.inputs)
        and r.output == recipe.output
    ]
