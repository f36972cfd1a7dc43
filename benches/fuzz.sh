#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/fuzz_targets/) for a bounded time and prints a markdown
# table of executions, executions/s and crashes per target, for benches/RESULTS.md.
# Not part of CI: it needs a nightly toolchain and cargo-fuzz, and takes minutes.
#
# usage: benches/fuzz.sh [TARGET...]          (default: every target)
#   FUZZ_SECONDS  seconds per target (default 60)
#   FUZZ_RSS_MB   libFuzzer's memory limit per run, MB (default 2048: more is reported as a crash)
#
# Setup once: rustup toolchain install nightly && cargo install cargo-fuzz
# Inputs found grow fuzz/corpus/TARGET/ (git-ignored); the committed seeds are fuzz/seeds/TARGET/.
# A crash leaves its input in fuzz/artifacts/TARGET/; replay it with
#   cd fuzz && cargo +nightly fuzz run TARGET artifacts/TARGET/crash-...
# then fix the defect and add a regression test in the owning crate (not in fuzz/).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${FUZZ_SECONDS:-60}
RSS=${FUZZ_RSS_MB:-2048}
command -v cargo-fuzz >/dev/null || { echo "fuzz: needs cargo-fuzz (cargo install cargo-fuzz)" >&2; exit 2; }
cargo +nightly --version >/dev/null 2>&1 || { echo "fuzz: needs a nightly toolchain (rustup toolchain install nightly)" >&2; exit 2; }
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
cargo +nightly fuzz build >/dev/null 2>&1 || cargo +nightly fuzz build
mkdir -p logs
echo "# benches/fuzz.sh on $(date -u +%Y-%m-%d) — ${SECS} s per target, $(nproc) cores, $(cargo +nightly --version)"
echo
echo "| target | seconds | executions | exec/s | corpus | crashes |"
echo "|---|---:|---:|---:|---:|---:|"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  log="logs/$t.log"
  start=$(date +%s.%N)
  rc=0
  cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb="$RSS" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
  execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log" | tail -n1)
  execs=${execs:-$(grep -oE 'Done [0-9]+ runs' "$log" | awk '{ print $2 }' | tail -n1)}
  execs=${execs:-0}
  crashes=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
  [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ] && crashes="failed (rc $rc, see fuzz/$log)"
  corpus=$(find "corpus/$t" -type f | wc -l)
  awk -v t="$t" -v s="$secs" -v e="$execs" -v c="$crashes" -v n="$corpus" \
    'BEGIN { printf "| %s | %s | %d | %.0f | %d | %s |\n", t, s, e, (s > 0 ? e / s : 0), n, c }'
  if [ "$crashes" != 0 ]; then
    grep -m3 -E 'panicked at|ERROR: |SUMMARY' "$log" | sed 's/^/    /' >&2 || true
    find "artifacts/$t" -type f -newer "$log" -o -type f -name 'crash-*' | head -n3 | sed 's/^/    artifact: fuzz\//' >&2
  fi
done
