"""The one exception type users see: the CLI prints its message on one line and exits with status 2."""


class EdgememError(Exception):
    """A problem with the user's input (file, recipe, shape, ...), described in one line."""


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def check_name(name: object, what: str) -> str:
    """A model name: it becomes a folder name (models/NAME_mixed), a C identifier (model.h's guard) and part of
    file paths, so it is ASCII letters, digits and '_', not starting with a digit, at most 64 characters; nothing
    else can reach outside a folder or break a C file."""
    if (not isinstance(name, str) or not name or len(name) > 64 or name[0].isdigit()
            or not set(name) <= _NAME_CHARS):
        shown = repr(name)[:70]
        raise EdgememError(f"{what} {shown} is not a valid model name (ASCII letters, digits and '_', not starting "
                           "with a digit, at most 64 characters)")
    return name
