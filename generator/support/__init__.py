"""Helpers every layer uses: keeping engine logs quiet, writing files atomically, and the small
text helpers of messages."""
