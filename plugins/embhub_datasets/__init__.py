"""Built-in perturbation dataset recipes, registered through the ``embhub`` entry-point group.

Each recipe reads one public screen's real file layout; the shared machinery lives in ``embhub.datasets``.
"""

from embhub.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    from embhub_datasets.essential import Essential
    from embhub_datasets.norman import Norman
    from embhub_datasets.sciplex3 import Sciplex3
    from embhub_datasets.tahoe import Tahoe

    for recipe in (Essential, Norman, Sciplex3, Tahoe):
        register(recipe)
