#!/usr/bin/env bash
# Runs README's test command (or the command given) beside one busy loop per core, as on a shared
# machine where other jobs run, and prints its exit code, wall time and the load average it ran at.
#   bash tests/under_load.sh                        # python -m pytest -q, beside $(nproc) busy loops
#   bash tests/under_load.sh python -m pytest -q -m "not slow"
set -u
cd "$(dirname "$0")/.."
cores="$(nproc)"
hogs=()
for _ in $(seq "$cores"); do
    yes >/dev/null &  # a busy loop: one core's worth of CPU, all the time
    hogs+=("$!")
done
trap 'kill "${hogs[@]}" 2>/dev/null' EXIT INT TERM
if [ "$#" -eq 0 ]; then
    set -- python -m pytest -q
fi
started="$(date +%s)"
"$@"
code="$?"
read -r load1 load5 load15 _ </proc/loadavg
echo "under_load: '$*' exited $code after $(( $(date +%s) - started )) s beside $cores busy loops" \
     "(load average ${load1} ${load5} ${load15})"
exit "$code"
