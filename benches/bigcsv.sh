#!/usr/bin/env bash
# Streaming at scale: a generated ~2 GB CSV (imdb_large/train.csv repeated) through tokenize
# and numericalize, each measured with /usr/bin/time -v (peak RSS must stay under 500 MB), and
# whether --threads is honoured (CPU time / wall time of --threads 1 vs 2 on a 270 MB input).
# Prints a markdown table for benches/RESULTS.md. The big files live in a temporary folder
# (TMP, default /tmp) and are deleted at the end.
#
# usage: benches/bigcsv.sh [big] [threads]     (default: both)
#   DATA     data folder (default ../shared/data)
#   GB       size of the CSV in GB (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/target/release
DATA=${DATA:-../shared/data}
GB=${GB:-2}
L=$DATA/imdb_large/train.csv
[ -f "$L" ] || { echo "bigcsv: $L is absent (see ../shared/data/README.md)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bigcsv: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
[ -x "$B/tokenize" ] && [ -x "$B/numericalize" ] || { echo "bigcsv: build first (make build)" >&2; exit 2; }
W=$(mktemp -d "${TMP:-/tmp}/ulmfit-bigcsv.XXXXXX")
trap 'rm -rf "$W"' EXIT
sel=("$@")
on() { [ ${#sel[@]} -eq 0 ] && return 0; for s in "${sel[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# "/usr/bin/time -v" fields of a run: wall_s user_s sys_s max_rss_kib
measure() {
  local log=$1; shift
  /usr/bin/time -v -o "$log" "$@" >/dev/null
  awk -F': ' '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); w = (n == 3) ? p[1] * 3600 + p[2] * 60 + p[3] : p[1] * 60 + p[2] }
    /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident set size/ { r = $2 }
    END { printf "%.2f %.2f %.2f %d\n", w, u, s, r }' "$log"
}

# like measure, plus the most OS threads the process had at once (sampled every 20 ms)
measure_threads() {
  local log=$1; shift
  /usr/bin/time -v -o "$log" "$@" >/dev/null &
  local tp=$! pid="" m=0 n
  while kill -0 "$tp" 2>/dev/null; do
    [ -n "$pid" ] || pid=$(pgrep -P "$tp" | head -1 || true)
    if [ -n "$pid" ]; then
      n=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
      [ "${n:-0}" -gt "$m" ] && m=$n
    fi
    sleep 0.02
  done
  wait "$tp"
  awk -F': ' -v m="$m" '
    /Elapsed \(wall clock\)/ { n = split($2, p, ":"); w = (n == 3) ? p[1] * 3600 + p[2] * 60 + p[3] : p[1] * 60 + p[2] }
    /User time/ { u = $2 } /System time/ { s = $2 } /Maximum resident set size/ { r = $2 }
    END { printf "%.2f %.2f %.2f %d %d\n", w, u, s, r, m }' "$log"
}

if on big; then
BIG=$W/big.csv
head -n1 "$L" >"$BIG"
body=$(( $(stat -c %s "$L") ))
reps=$(( (GB * 1000000000 + body - 1) / body ))
for _ in $(seq "$reps"); do tail -n +2 "$L" >>"$BIG"; done
SZ=$(stat -c %s "$BIG")

read -r tw tu ts tr < <(measure "$W/tok.time" "$B/tokenize" "$BIG" --keep label -q --threads 2 -o "$W/big.tokens.jsonl")
TS=$(stat -c %s "$W/big.tokens.jsonl")
read -r nw nu ns nr < <(measure "$W/num.time" "$B/numericalize" "$W/big.tokens.jsonl" -o "$W/big.shards" -q --threads 2 --metrics "$W/num.jsonl")
DOCS=$(grep -o '"docs":[0-9]*' "$W/num.jsonl" | head -1 | cut -d: -f2)
TOKS=$(grep -o '"tokens":[0-9]*' "$W/num.jsonl" | head -1 | cut -d: -f2)
rm -rf "$W/big.shards"

echo "## Streaming a $(awk -v b="$SZ" 'BEGIN { printf "%.2f", b / 1e9 }') GB CSV — \`benches/bigcsv.sh\` ($(date -u +%Y-%m-%d), $(nproc) cores)"
echo
echo "imdb_large/train.csv repeated $reps times: $DOCS documents, $TOKS tokens. \`/usr/bin/time -v\`, whole process, --threads 2."
echo
echo "| stage | input GB | wall s | user s | sys s | peak RSS MiB | under 500 MB |"
echo "|---|---:|---:|---:|---:|---:|---|"
row() { awk -v n="$1" -v g="$2" -v w="$3" -v u="$4" -v s="$5" -v r="$6" \
  'BEGIN { printf "| %s | %.2f | %.1f | %.1f | %.1f | %.0f | %s |\n", n, g / 1e9, w, u, s, r / 1024, (r / 1024 < 500 ? "yes" : "**no**") }'; }
row tokenize "$SZ" "$tw" "$tu" "$ts" "$tr"
row numericalize "$TS" "$nw" "$nu" "$ns" "$nr"
echo

rm -rf "$W"/*
fi

if on threads; then
# --threads: the OS threads a run has at most, and CPU time over wall time (the latter needs an
# otherwise idle machine to mean anything), on 8 copies of train.csv (~270 MB)
MID=$W/mid.csv
head -n1 "$L" >"$MID"
for _ in $(seq 8); do tail -n +2 "$L" >>"$MID"; done
"$B/tokenize" "$MID" --keep label -q --threads 2 -o "$W/mid.tokens.jsonl"
echo "--threads on $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the runs:"
echo
echo "| run | input MB | wall s | user+sys s | CPU / wall | OS threads at most | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in 1 2 4; do
  read -r w u s r m < <(measure_threads "$W/t.time" "$B/tokenize" "$MID" --keep label -q --threads "$t" -o /dev/null)
  awk -v t="$t" -v mb="$(stat -c %s "$MID")" -v w="$w" -v u="$u" -v s="$s" -v r="$r" -v m="$m" \
    'BEGIN { printf "| tokenize --threads %s | %.0f | %.1f | %.1f | %.2f | %d | %.0f |\n", t, mb / 1e6, w, u + s, (u + s) / w, m, r / 1024 }'
done
for t in 1 2 4; do
  read -r w u s r m < <(measure_threads "$W/t.time" "$B/numericalize" "$W/mid.tokens.jsonl" -o "$W/mid.shards" --force -q --threads "$t" --metrics /dev/null)
  awk -v t="$t" -v mb="$(stat -c %s "$W/mid.tokens.jsonl")" -v w="$w" -v u="$u" -v s="$s" -v r="$r" -v m="$m" \
    'BEGIN { printf "| numericalize --threads %s | %.0f | %.1f | %.1f | %.2f | %d | %.0f |\n", t, mb / 1e6, w, u + s, (u + s) / w, m, r / 1024 }'
done
echo
echo "Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
fi
