"""Errors a user can cause and fix. The CLI prints their message as one red line and exits non-zero.

Anything else that escapes is a bug and keeps its traceback.
"""


class EmbhubError(Exception):
    """Base class: the message names the offending item and says what to do."""


class PluginError(EmbhubError):
    """A plugin could not be loaded, registered something invalid, or a provider broke its contract."""


class RegistryError(EmbhubError):
    """A registry file is malformed, names an unknown provider or passes a bad parameter."""


class InputError(EmbhubError):
    """An input list is empty, unreadable or has duplicate ids."""


class StoreError(EmbhubError):
    """An embedding store is missing, corrupt, incomplete or does not match the request."""
