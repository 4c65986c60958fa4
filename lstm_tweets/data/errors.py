"""One exception type for bad input, so CLIs can turn it into a clean message and exit code 2."""


class DataError(ValueError):
    """Input that cannot be used as it is. The message names the file, row or column and says
    what was expected."""
