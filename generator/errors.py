"""The one exception type for mistakes the user can fix (config, data, paths).

The CLI prints its message as one line on stderr and exits with code 2. Anything else that
escapes is a bug in generator and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input. The message names the field or file and the fix."""
