"""The ``loadbench`` command: parse arguments and wire the stages together, nothing more.

Public surface: `main.main(argv)` (the ``loadbench`` entry point) and `main.build_parser`; each
subcommand is one module (`run`, `ui`, `report`, `compare`, `sweep`, `demo`, `agent`, `worker`,
`scenarios`); `options` holds the shared option groups and `config.run_config` builds the one
`RunConfig`.
"""
