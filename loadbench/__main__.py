from __future__ import annotations

from loadbench.cli.main import main

raise SystemExit(main())
