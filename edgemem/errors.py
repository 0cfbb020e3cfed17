"""The one exception type users see: the CLI prints its message on one line and exits with status 2."""


class EdgememError(Exception):
    """A problem with the user's input (file, recipe, shape, ...), described in one line."""
