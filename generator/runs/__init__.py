"""The commands: the build pipeline, compare, sweep (local or on Ray), and report re-rendering, with
publishing that makes each result appear whole or not at all."""
