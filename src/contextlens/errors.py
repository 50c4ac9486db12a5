"""The one exception type users see: a single sentence naming the problem and the fix."""


class ContextlensError(ValueError):
    """Bad input or a missing/corrupt file. The CLI prints the message alone and exits with 2."""
