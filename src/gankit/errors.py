"""The one exception type gankit raises for bad input, and the warnings it gives: each message is
one line for the user."""


class GankitError(Exception):
    """A problem with the user's input (a file, a value, a config): printed as one line."""


class CheckpointFallbackWarning(UserWarning):
    """A run's latest checkpoint could not be read and an older one was used in its place."""
