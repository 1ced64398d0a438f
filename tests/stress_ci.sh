#!/usr/bin/env bash
# The whole suite, as CI runs it (`make unit`), several times while CPU burners oversubscribe
# the cores: a test that passes only on an idle machine fails here.
#
#   tests/stress_ci.sh [ROUNDS]          (default 3; BURNERS=4 burners, from the repository root or anywhere)
#
# Burners: stress-ng when installed, else plain `python3 -c 'while True: pass'` processes; they
# are stopped on any exit (trap). Prints one pass/fail line per round; exits 1 when any round
# failed (each round's output is kept in a log file named on its line).
set -u

rounds=${1:-3}
burners=${BURNERS:-4}
case $rounds in '' | *[!0-9]*) echo "usage: $0 [ROUNDS]" >&2; exit 2 ;; esac
case $burners in '' | *[!0-9]*) echo "BURNERS must be a number" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.." || exit 2
logs=$(mktemp -d "${TMPDIR:-/tmp}/stress_ci.XXXXXX") || exit 2

pids=()
stop_burners() {
    for pid in ${pids[@]+"${pids[@]}"}; do
        kill "$pid" 2>/dev/null
    done
    for pid in ${pids[@]+"${pids[@]}"}; do
        wait "$pid" 2>/dev/null
    done
    pids=()
}
trap stop_burners EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if command -v stress-ng >/dev/null 2>&1; then
    stress-ng --cpu "$burners" --quiet &
    pids+=("$!")
    what="stress-ng --cpu $burners"
else
    for _ in $(seq "$burners"); do
        python3 -c 'while True: pass' &
        pids+=("$!")
    done
    what="$burners python3 busy loops"
fi
echo "stress_ci: $rounds round(s) of make unit on $(nproc) core(s) beside $what; logs in $logs"

failed=0
for round in $(seq "$rounds"); do
    log="$logs/round-$round.log"
    started=$(date +%s)
    if make unit >"$log" 2>&1; then
        status=pass
    else
        status=FAIL
        failed=$((failed + 1))
    fi
    summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed)|^FAILED|^ERROR' "$log" | tail -n 5 | tr '\n' ' ')
    echo "round $round/$rounds: $status ($(($(date +%s) - started)) s) $summary[$log]"
done

if [ "$failed" -gt 0 ]; then
    echo "stress_ci: $failed of $rounds round(s) failed"
    exit 1
fi
echo "stress_ci: all $rounds round(s) passed"
