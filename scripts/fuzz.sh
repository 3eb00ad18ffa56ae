#!/usr/bin/env bash
# Fuzz the parsers on network paths (docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# 1. Coverage-guided: each cargo-fuzz target (fuzz/fuzz_targets/) runs for
#    SECONDS (default 60), starting from the checked-in seeds
#    (fuzz/corpus/<target>/); what it learns goes to fuzz/work/<target>/
#    (not checked in), crashes to fuzz/artifacts/<target>/. Needs
#    `cargo install cargo-fuzz` and a C++ compiler; on a stable toolchain
#    RUSTC_BOOTSTRAP=1 lets rustc accept the -Z flags libFuzzer needs.
#    Skipped, loudly, when cargo-fuzz is not installed.
# 2. The same properties as long property tests: every crate's
#    tests/fuzz.rs with PROPTEST_CASES (default 20000) cases per test.
#
# Prints executions and findings per target. Exits non-zero on a finding.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
shift || true
export CARGO_INCREMENTAL=0
NICE="nice -n ${FUZZ_NICE:-10}"

found=0
report=()
if cargo fuzz --version >/dev/null 2>&1; then
  targets=("$@")
  if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz list)
  fi
  (cd fuzz && RUSTC_BOOTSTRAP=1 $NICE cargo fuzz build -s none) || exit 1
  for t in "${targets[@]}"; do
    mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
    log="fuzz/work/$t.log"
    before=$(ls "fuzz/artifacts/$t" | wc -l)
    (cd fuzz && RUSTC_BOOTSTRAP=1 $NICE cargo fuzz run -s none "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -max_len=4096 -rss_limit_mb=2048 \
        -print_final_stats=1) >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    after=$(ls "fuzz/artifacts/$t" | wc -l)
    findings=$((after - before))
    if [ "$rc" -ne 0 ] || [ "$findings" -gt 0 ]; then
      found=1
      report+=("$(printf '%-12s %12s execs  cov %6s  FINDING (rc %s): see %s and fuzz/artifacts/%s/' "$t" "${execs:-?}" "${cov:-?}" "$rc" "$log" "$t")")
    else
      report+=("$(printf '%-12s %12s execs  cov %6s  no findings' "$t" "${execs:-?}" "${cov:-?}")")
    fi
    echo "${report[-1]}"
  done
else
  echo "fuzz.sh: SKIPPED coverage-guided fuzzing: cargo-fuzz is not installed (cargo install cargo-fuzz)"
fi

# The property tests, longer than in the normal test suite.
mkdir -p fuzz/work
export PROPTEST_CASES=${PROPTEST_CASES:-20000}
for crate in sessionlab-wire sessionlab-session sessionlab-replication-core sessionlab-replication sessionlab-lb sessionlab-node; do
  if $NICE cargo test -q --locked -p "$crate" --test fuzz >"fuzz/work/proptest-$crate.log" 2>&1; then
    report+=("$(printf '%-28s property tests, %s cases each: ok' "$crate" "$PROPTEST_CASES")")
    rm -f "fuzz/work/proptest-$crate.log"
  else
    found=1
    report+=("$(printf '%-28s property tests: FAILED, see fuzz/work/proptest-%s.log' "$crate" "$crate")")
  fi
  echo "${report[-1]}"
done

echo
echo "fuzz.sh summary ($(date -u +%Y-%m-%dT%H:%MZ), ${SECONDS_EACH}s per target):"
printf '  %s\n' "${report[@]}"
exit $found
