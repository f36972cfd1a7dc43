#!/usr/bin/env bash
# Whole-process benchmarks against the peers in ../shared/peer, in one run on one machine, so
# the ratios are meaningful on a shared, noisy VM. Prints a markdown table to paste into
# benches/RESULTS.md; raw JSON goes to bench-out/.
#
# usage: benches/run.sh [tokenize] [numericalize] [memory]      (default: all)
#   PEER_PY   python of the peer venv (default ~/.cache/peer-venv/bin/python; made by
#             ../shared/peer/setup.sh). Peer rows are skipped when it is absent.
#   DATA      data folder (default ../shared/data)
#   REPEAT    runs per measurement of our tools; the median is reported (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
DATA=${DATA:-../shared/data}
PEER=../shared/peer
PEER_PY=${PEER_PY:-$HOME/.cache/peer-venv/bin/python}
REPEAT=${REPEAT:-3}
OUT=bench-out
mkdir -p "$OUT"
for t in jq /usr/bin/time; do
  command -v $t >/dev/null || { echo "bench: needs $t (apt-get install jq time)" >&2; exit 2; }
done
[ -x $BIN/tokenize ] || { echo "bench: build first (make bench builds)" >&2; exit 2; }
sel=("$@")
on() { [ ${#sel[@]} -eq 0 ] && return 0; for s in "${sel[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
have_peer() { [ -x "$PEER_PY" ]; }

# median of numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# run "$@" REPEAT times; prints "median_seconds max_rss_mb"
timeit() {
  local secs=() rss=0
  for _ in $(seq "$REPEAT"); do
    /usr/bin/time -f '%e %M' -o "$OUT/time.txt" "$@" >/dev/null 2>>"$OUT/stderr.log"
    read -r s m <"$OUT/time.txt"; secs+=("$s"); [ "$m" -gt "$rss" ] && rss=$m
  done
  printf '%s %s\n' "$(printf '%s\n' "${secs[@]}" | median)" "$((rss / 1024))"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

L=$DATA/imdb_large/train.csv
echo "# benches/run.sh on $(date -u +%Y-%m-%d) — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo

if on tokenize; then
  BYTES=$(jq -r '.bytes' <(printf '{"bytes":33132823}'))   # text bytes of train.csv's text column (as the peers count)
  read -r t2 r2 < <(timeit $BIN/tokenize "$L" --keep label --threads 2 -q -o /dev/null)
  read -r t1 r1 < <(timeit $BIN/tokenize "$L" --keep label --threads 1 -q -o /dev/null)
  $BIN/tokenize "$L" --keep label --threads 2 -q --metrics "$OUT/tokenize.metrics.jsonl" -o "$OUT/train.tokens.jsonl" --force
  DOCS=$(jq -r .docs "$OUT/tokenize.metrics.jsonl"); TOKS=$(jq -r .tokens "$OUT/tokenize.metrics.jsonl")
  BYTES=$(jq -r .bytes "$OUT/tokenize.metrics.jsonl")
  echo "## tokenize: imdb_large/train.csv ($DOCS docs, $(awk -v b=$BYTES 'BEGIN{printf "%.1f", b/1e6}') MB of text, $TOKS tokens)"
  echo
  echo "| run | wall s (median of $REPEAT) | docs/s | MB/s | tokens | peak RSS MiB |"
  echo "|---|---:|---:|---:|---:|---:|"
  row() { awk -v n="$1" -v t="$2" -v d="$DOCS" -v b="$BYTES" -v k="$3" -v r="$4" \
            'BEGIN { printf "| %s | %.2f | %.0f | %.1f | %s | %s |\n", n, t, d/t, b/1e6/t, k, r }'; }
  row "tokenize --threads 2 (whole process)" "$t2" "$TOKS" "$r2"
  row "tokenize --threads 1 (whole process)" "$t1" "$TOKS" "$r1"
  if have_peer; then
    (cd $PEER && "$PEER_PY" fastai_tokenize.py --input "../data/imdb_large/train.csv" --workers 2 2>/dev/null | tail -n1) >"$OUT/fastai_tok.json" || true
    (cd $PEER && "$PEER_PY" hf_tokenize.py --input "../data/imdb_large/train.csv" 2>/dev/null | tail -n1) >"$OUT/hf_tok.json" || true
    fs=$(jq -r .seconds "$OUT/fastai_tok.json"); hs=$(jq -r .whitespace.seconds "$OUT/hf_tok.json")
    row "fastai tokenize_df, 2 workers (tokenize call only)" "$fs" "$(jq -r .tokens "$OUT/fastai_tok.json")" "$(jq -r .peak_rss_mb "$OUT/fastai_tok.json")"
    row "HF tokenizers Whitespace pre-tokenizer via Python (no rules)" "$hs" "$(jq -r .whitespace.tokens "$OUT/hf_tok.json")" "$(jq -r .peak_rss_mb "$OUT/hf_tok.json")"
    echo
    echo "Ratios (same run): tokenize --threads 2 is **$(ratio "$fs" "$t2")×** fastai's docs/s (2 workers) and **$(ratio "$hs" "$t2")×** the HF Whitespace figure."
  fi
  echo
fi

if on numericalize; then
  T=$OUT/train.tokens.jsonl
  [ -f "$T" ] || $BIN/tokenize "$L" --keep label -q -o "$T" --force
  TOKS=$(wc -c <"$T")
  read -r tb rb < <(timeit $BIN/numericalize "$T" -o "$OUT/shards" --force -q --threads 2)
  NT=$(jq -r .tokens "$OUT/shards/manifest.json")
  read -r ta ra < <(timeit $BIN/numericalize "$T" --vocab "$OUT/shards" -o "$OUT/shards2" --force -q --threads 2)
  echo "## numericalize: the tokens of imdb_large/train.csv ($NT tokens, $(awk -v b=$TOKS 'BEGIN{printf "%.0f", b/1e6}') MB of JSON lines)"
  echo
  echo "| run | wall s (median of $REPEAT) | M tokens/s | peak RSS MiB |"
  echo "|---|---:|---:|---:|"
  awk -v t="$tb" -v n="$NT" -v r="$rb" 'BEGIN { printf "| build vocab + shards (2 threads) | %.2f | %.1f | %s |\n", t, n/t/1e6, r }'
  awk -v t="$ta" -v n="$NT" -v r="$ra" 'BEGIN { printf "| apply --vocab + shards (2 threads) | %.2f | %.1f | %s |\n", t, n/t/1e6, r }'
  echo
fi

if on memory; then
  # Streaming: a ~1 GB CSV (imdb_large/train.csv repeated) through tokenize and numericalize;
  # peak RSS must stay far below the input size.
  BIG=$OUT/big.csv
  if [ ! -f "$BIG" ]; then
    head -n1 "$L" >"$BIG"
    for _ in $(seq 30); do tail -n +2 "$L" >>"$BIG"; done
  fi
  SZ=$(stat -c %s "$BIG")
  /usr/bin/time -f '%e %M' -o "$OUT/time.txt" $BIN/tokenize "$BIG" --keep label -q -o "$OUT/big.tokens.jsonl" --force
  read -r ts tr <"$OUT/time.txt"
  /usr/bin/time -f '%e %M' -o "$OUT/time.txt" $BIN/numericalize "$OUT/big.tokens.jsonl" -o "$OUT/big.shards" --force -q >/dev/null
  read -r ns nr <"$OUT/time.txt"
  TS=$(stat -c %s "$OUT/big.tokens.jsonl")
  echo "## memory: streaming a $(awk -v b=$SZ 'BEGIN{printf "%.2f", b/1e9}') GB CSV"
  echo
  echo "| stage | input GB | wall s | peak RSS MiB |"
  echo "|---|---:|---:|---:|"
  awk -v s=$SZ -v t=$ts -v r=$tr 'BEGIN { printf "| tokenize | %.2f | %.1f | %.0f |\n", s/1e9, t, r/1024 }'
  awk -v s=$TS -v t=$ns -v r=$nr 'BEGIN { printf "| numericalize | %.2f | %.1f | %.0f |\n", s/1e9, t, r/1024 }'
  echo
  rm -rf "$OUT/big.tokens.jsonl" "$OUT/big.shards"
fi
