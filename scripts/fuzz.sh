#!/usr/bin/env bash
# Fuzzes every trace reader (legacy, merger-1.0, merger-2.0, harmonizer-0.1) and the pipeline
# parser for a bounded time with the `spyral-fuzz` harness (tests/fuzz), and fails if any target
# reports a finding (a panic, a crash, a case over its time bound, a rise of resident memory over
# its bound, an error that does not name the file). Every finding is printed with its target and
# case seed; `target/debug/spyral-fuzz --target T --replay SEED` reproduces it in one process.
#
# Runs two targets at a time (the machine's two cores); with an odd number of targets the last
# one runs twice in parallel under two seeds, so both cores stay busy. Total time is about
# ceil(targets / 2) x FUZZ_SECONDS plus the build.
#
# Environment:
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_SEED     base seed (default: the clock; printed, so a run can be repeated)
#   FUZZ_TARGETS  space-separated targets (default: all five)
#   FUZZ_JOBS     targets at a time (default 2)
#   FUZZ_ARGS     extra arguments for spyral-fuzz (e.g. --strict, --case-seconds 5)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
seed=${FUZZ_SEED:-$(date +%s)}
jobs=${FUZZ_JOBS:-2}
read -r -a targets <<<"${FUZZ_TARGETS:-legacy merger-1.0 merger-2.0 harmonizer-0.1 pipeline}"
read -r -a extra <<<"${FUZZ_ARGS:-}"

started=$(date +%s)
echo "== fuzz: building spyral-fuzz"
cargo build --locked -p spyral-fuzz
bin="${CARGO_TARGET_DIR:-target}/debug/spyral-fuzz"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# Jobs: "target seed" pairs; an odd last target gets a second seed.
runs=()
for t in "${targets[@]}"; do
    runs+=("$t $seed")
done
if (( ${#targets[@]} % jobs != 0 )) && (( jobs == 2 )); then
    runs+=("${targets[-1]} $((seed + 1))")
fi

echo "== fuzz: ${#targets[@]} targets, ${seconds} s each, ${jobs} at a time, seed ${seed}"
declare -A job_of=()
failed=()
finish_one() {
    local pid=$1 status=$2
    local name=${job_of[$pid]}
    unset "job_of[$pid]"
    echo "-- ${name}"
    cat "$logs/${name// /_}.log"
    if (( status != 0 )); then
        failed+=("$name")
    fi
}
for run in "${runs[@]}"; do
    while (( ${#job_of[@]} >= jobs )); do
        status=0
        wait -n -p done_pid "${!job_of[@]}" || status=$?
        finish_one "$done_pid" "$status"
    done
    read -r t s <<<"$run"
    "$bin" --target "$t" --seconds "$seconds" --seed "$s" "${extra[@]}" \
        >"$logs/${run// /_}.log" 2>&1 &
    job_of[$!]=$run
done
while (( ${#job_of[@]} > 0 )); do
    status=0
    wait -n -p done_pid "${!job_of[@]}" || status=$?
    finish_one "$done_pid" "$status"
done

elapsed=$(( $(date +%s) - started ))
if (( ${#failed[@]} > 0 )); then
    echo "== fuzz: FAILED in ${elapsed} s: findings in ${failed[*]} (seed ${seed}; see FINDING lines above)"
    exit 1
fi
echo "== fuzz: no findings in ${elapsed} s (seed ${seed})"
