"""The one error type the training CLI turns into a one-line message and a non-zero exit."""


class UsageError(Exception):
    """Bad input the user can fix (missing file, empty folder, no weights); says how."""
