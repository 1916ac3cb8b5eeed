"""Errors a user can cause. The CLI turns them into one clear line and an exit code, never a traceback."""


class CallaroError(Exception):
    """Base class: a problem with the user's input or request (exit code 2)."""

    exit_code = 2


class UnusableInput(CallaroError):
    """The file is not a table we can read (binary, empty, no header, unreadable encoding, too large)."""


class MappingError(CallaroError):
    """The mapping file or automatic mapping cannot be applied."""


class ConfigError(CallaroError):
    """A campaign, custom-field or segment definition is invalid."""


class NothingToImport(CallaroError):
    """The file is a table but holds no data rows."""

    exit_code = 1


class DncUnavailable(CallaroError):
    """A DNC source cannot be trusted (unreadable, stale, empty, shrunk): fail closed."""

    exit_code = 1
