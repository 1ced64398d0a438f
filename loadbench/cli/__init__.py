"""The ``loadbench`` command: parse arguments and wire the stages together, nothing more."""
