"""The one exception type for mistakes the user can fix (config, data, paths).

The CLI prints its message as one line on stderr and exits with code 2. Anything else that
escapes is a bug in generator and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input. The message names the field or file and the fix."""


class VerificationError(Exception):
    """The built model does not behave as it must (e.g. TFLite Micro disagrees with LiteRT).

    Not the user's mistake and not a crash: the CLI reports it in one line with exit code 1,
    and nothing is written."""
