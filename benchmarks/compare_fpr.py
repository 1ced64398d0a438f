"""False-positive rate of ``loadbench compare``: how often two runs of one distribution differ.

    python benchmarks/compare_fpr.py [--pairs 200] [--seed 0] [--error-p 0.01] [--resamples 400]
        [--ci-level 0.995] [--no-widening]

Each pair is two synthetic run directories built exactly as ``tests/compare/test_compare.py`` builds
them (`synthetic_records`, `make_run`: 30 s at about 200 req/s, lognormal latencies, σ 0.4,
times a per-second load factor, lognormal σ 0.1, so that the requests of a second are
correlated; ``--error-p`` of them fail), written as ``meta.json`` + ``requests.csv`` and
analyzed by the analyzer. Pair ``i`` uses the record seeds ``2·(seed+i)`` and ``2·(seed+i)+1``
and the bootstrap seed ``i``; ``compare_runs`` then compares them with its defaults.

Prints, per metric of the test's family (latency p50 … p99.9, mean, max, throughput, request
rate, error rate), the share of pairs flagged "better" or "worse" (a false positive: the two
runs come from one distribution), and the family-wise rate: the share of pairs with any of
them flagged. ``--ci-level`` and ``--no-widening`` replace `loadbench.compare.bootstrap.CI_LEVEL` and
turn off its small-sample widening (`expansion`), to show what those choices buy.
``docs/metrics.md`` (Comparing runs, Verdict) states the figures of the default command and
of ``--ci-level 0.95 --no-widening``; a run takes about a minute on one core.

Exit code: 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_compare import FAMILY, make_run, synthetic_records

from loadbench.compare import bootstrap
from loadbench.compare.compare import compare_runs
from loadbench.compare.rundata import load_run


def measure(pairs: int, seed: int, error_p: float, resamples: int) -> tuple[dict[str, int], int]:
    """(flagged pairs per metric, pairs with any metric flagged)."""
    flagged = dict.fromkeys(FAMILY, 0)
    any_flagged = 0
    with tempfile.TemporaryDirectory(prefix="compare-fpr-") as tmp:
        root = Path(tmp)
        for i in range(pairs):
            k = seed + i
            base = make_run(root / f"base{i}", synthetic_records(2 * k, error_p=error_p))
            cand = make_run(root / f"cand{i}", synthetic_records(2 * k + 1, error_p=error_p))
            result = compare_runs(load_run(base), load_run(cand), resamples=resamples, seed=i)
            hits = [path for path in FAMILY if result["metrics"][path]["verdict"] != "same"]
            for path in hits:
                flagged[path] += 1
            any_flagged += bool(hits)
    return flagged, any_flagged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=200, help="pairs of runs (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="first record seed (default 0)")
    parser.add_argument("--error-p", type=float, default=0.01, help="share of failed requests (default 0.01)")
    parser.add_argument("--resamples", type=int, default=400, help="bootstrap resamples (default 400)")
    parser.add_argument(
        "--ci-level", type=float, default=bootstrap.CI_LEVEL, help="interval level (default 0.995)"
    )
    parser.add_argument("--no-widening", action="store_true", help="no small-sample widening of the interval")
    args = parser.parse_args(argv)
    bootstrap.CI_LEVEL = args.ci_level
    if args.no_widening:
        bootstrap.expansion = lambda blocks: 1.0
    started = time.perf_counter()
    flagged, any_flagged = measure(args.pairs, args.seed, args.error_p, args.resamples)
    print(
        f"{args.pairs} pairs of same-distribution runs (seed {args.seed}, {args.error_p:.1%} errors, "
        f"{args.resamples} resamples, {args.ci_level:.1%} level{', not widened' if args.no_widening else ''}), "
        f"{time.perf_counter() - started:.0f} s"
    )
    for path in FAMILY:
        print(f"  {path:<22} {flagged[path] / args.pairs:6.1%}  ({flagged[path]} of {args.pairs})")
    print(f"  {'family-wise (any)':<22} {any_flagged / args.pairs:6.1%}  ({any_flagged} of {args.pairs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
