"""The extension points of embhub. A plugin is a module with functions marked ``@hookimpl``.

Plugins are found through the ``embhub`` entry-point group; the built-in providers in ``plugins/`` use
exactly the same mechanism. Each hook receives a ``register`` callback that the plugin may call any
number of times. Registration must stay cheap: import heavy libraries (torch, rdkit…) inside the
methods that need them, never at module import.
"""

import pluggy

hookspec = pluggy.HookspecMarker("embhub")
hookimpl = pluggy.HookimplMarker("embhub")


@hookspec
def register_providers(register):
    """Register embedding providers.

    Called once when the plugin manager starts. ``register(ProviderClass)`` adds a subclass of
    :class:`embhub.provider.Provider`; its class attributes (name, entity, id namespace, licence,
    citation…) describe it without instantiating it, so listing providers never loads a model.
    """


@hookspec
def register_models(register):
    """Contribute named models to the registry.

    ``register(name, provider=..., parameters={...}, checkpoint=None, revision=None,
    description="")`` adds one entry, exactly as a ``models:`` entry of ``registry.yaml`` would.
    Entries from registry files given by the user take precedence over plugin entries of the same
    name.
    """


@hookspec
def register_datasets(register):
    """Register perturbation datasets.

    ``register(DatasetClass)`` adds a dataset recipe: how to read the real public files of one
    perturbation screen and turn them into prepared responses (see :mod:`embhub.datasets`).
    """
