"""The dataset recipes that installed plugins register, by name."""

from __future__ import annotations

from embhub.datasets.recipe import Dataset
from embhub.errors import InputError


def dataset_recipes() -> dict[str, type[Dataset]]:
    from embhub.plugins import load_plugins

    return dict(sorted(load_plugins().datasets.items()))


def dataset_recipe(name: str) -> Dataset:
    recipes = dataset_recipes()
    if name not in recipes:
        raise InputError(
            f"unknown dataset '{name}' (known: {', '.join(recipes) or 'none'}); see 'embhub datasets list'"
        )
    return recipes[name]()
