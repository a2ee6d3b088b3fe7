"""The one exception type gankit raises for bad input, and the warnings it gives: each message is
one line for the user."""


class GankitError(Exception):
    """A problem with the user's input (a file, a value, a config): printed as one line."""


class GankitWarning(UserWarning):
    """Something the user should know that does not stop the command: printed as one line."""


class CheckpointFallbackWarning(GankitWarning):
    """A run's latest checkpoint could not be read and an older one was used in its place."""


class IgnoredSettingWarning(GankitWarning):
    """A config value was set that the run's game, nets or data never read."""
