"""The one exception type for bad user input; the CLI prints its message as one line and exits 2."""


class UserError(ValueError):
    """Bad input: the message names the field and the fix."""
