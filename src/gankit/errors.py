"""The one exception type gankit raises for bad input: its message is one line for the user."""


class GankitError(Exception):
    """A problem with the user's input (a file, a value, a config): printed as one line."""
