"""Built-in perturbation dataset recipes, registered through the ``embhub`` entry-point group."""

from embhub.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    from plugins.embhub_datasets.essential import Essential

    register(Essential)
