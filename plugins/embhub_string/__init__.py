"""STRING network gene embeddings (Laplacian eigenmap and graph autoencoder) as a built-in plugin.

Registering costs nothing: scipy and torch are imported only when a graph is embedded.
"""

from __future__ import annotations

from embhub.hookspecs import hookimpl


@hookimpl
def register_providers(register):
    from embhub_string.providers import StringGNN, StringSpectral

    register(StringSpectral)
    register(StringGNN)
