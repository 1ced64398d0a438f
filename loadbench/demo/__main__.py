"""``python -m loadbench.demo ...``: ``loadbench demo ...`` without the rest of the command line."""

from __future__ import annotations

from loadbench.demo.server import main

raise SystemExit(main())
