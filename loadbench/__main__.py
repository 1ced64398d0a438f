from __future__ import annotations

from loadbench.cli import main

raise SystemExit(main())
