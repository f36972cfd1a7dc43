#!/usr/bin/env bash
# lm-train against fastai (../shared/peer/fastai_lm.py), whole processes, in one run on one
# machine, so the ratios mean something on a shared, noisy VM. Prints markdown (save it as
# benches/results/lm.md); raw outputs go to bench-out/lm/.
#
# usage: benches/lm.sh [speed] [memory]        (default: both)
#   speed   CPU tokens/s of the standard (emb 400, hid 1152, 3 layers, bs 64, bptt 72) and tiny
#           (emb 64, hid 128, 2 layers, bs 32, bptt 64) configs on imdb_sample, fastai vs
#           lm-train fp32 and bf16, the same data, batches and flags as BASELINES.md section 3
#           (drop_mult 0.3, lr 2e-3, AR/TAR on); timed batches after warm-up on both sides
#           (fastai: its timed batches' wall time; lm-train: its lm_step tokens_per_s, one
#           record per step, the warm-up steps dropped). FLOP/s as a fraction of this machine's
#           matmul peak, measured with libtorch in the same run (lm-train bench-matmul).
#   memory  peak RSS (/usr/bin/time) of the standard config on imdb_large/train.csv (vocab
#           38,392) and on the same token stream repeated 10× (same vocab), fp32 and bf16.
# env:
#   PEER_PY     peer python (default ~/.cache/peer-venv/bin/python); fastai rows skipped if absent
#   DATA        data folder (default ../shared/data)
#   ROUNDS      rounds of the speed runs, alternating fastai / fp32 / bf16; medians (default 1)
#   STD_BATCHES, TINY_BATCHES   timed batches (default 10 and 100, as BASELINES.md), after 2 warm-up
#   MEM_STEPS   steps of each memory run (default 5)
#   THREADS     torch threads for lm-train (default: nproc, as torch's default for fastai)
#   CONFIGS     which speed configs (default "tiny std")
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
DATA=${DATA:-../shared/data}
PEER=../shared/peer
PEER_PY=${PEER_PY:-$HOME/.cache/peer-venv/bin/python}
ROUNDS=${ROUNDS:-1}
STD_BATCHES=${STD_BATCHES:-10}
TINY_BATCHES=${TINY_BATCHES:-100}
WARMUP=2
MEM_STEPS=${MEM_STEPS:-5}
THREADS=${THREADS:-$(nproc)}
CONFIGS=${CONFIGS:-tiny std}
OUT=bench-out/lm
mkdir -p "$OUT"
for t in jq /usr/bin/time; do
  command -v $t >/dev/null || { echo "lm.sh: needs $t (apt-get install jq time)" >&2; exit 2; }
done
[ -x $BIN/lm-train ] || { echo "lm.sh: build first: cargo build --release -p lm-train -p tokenize -p numericalize" >&2; exit 2; }
sel=("$@")
on() { [ ${#sel[@]} -eq 0 ] && return 0; for s in "${sel[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
have_peer() { [ -x "$PEER_PY" ]; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# training FLOPs per token: 3 × (Σ_layers 8·out·(in+out) + 2·emb·vocab)
flops_per_token() {  # emb hid layers vocab
  awk -v e="$1" -v h="$2" -v n="$3" -v v="$4" 'BEGIN {
    f = 0; for (l = 0; l < n; l++) { i = (l == 0) ? e : h; o = (l == n - 1) ? e : h; f += 8 * o * (i + o) }
    printf "%.0f", 3 * (f + 2 * e * v) }'
}

echo "# benches/lm.sh on $(date -u +%Y-%m-%d) — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo

if on speed; then
  S=$DATA/imdb_sample/texts.csv
  ABS_S=$(realpath "$S"); ABS_OUT=$(realpath "$OUT")
  if [ ! -f "$OUT/sample/manifest.json" ]; then
    $BIN/tokenize "$S" -q | $BIN/numericalize -o "$OUT/sample" --valid-pct 0.1 --seed 42 --force -q >/dev/null
  fi
  V=$(jq -r .vocab_size "$OUT/sample/manifest.json")
  # the matmul peak: the best of a measurement before and one after the training runs (a
  # shared machine only ever makes it look lower)
  matmul() { $BIN/lm-train bench-matmul --n 4096 --secs 3 >>"$OUT/matmul.jsonl"; }
  rm -f "$OUT/matmul.jsonl"; matmul

  # ours: tokens/s of the steps after the warm-up (harmonic mean of per-step tokens_per_s)
  ours() {  # name precision batches emb hid layers bs bptt
    local name=$1 prec=$2 n=$3
    $BIN/lm-train "$OUT/sample" -o "$OUT/ck_$name" --force --steps $((n + WARMUP)) --log-every 1 \
      --valid-split none --precision "$prec" --threads "$THREADS" --progress none \
      --emb-sz "$4" --n-hid "$5" --n-layers "$6" --bs "$7" --bptt "$8" --drop-mult 0.3 --lr 2e-3 \
      --metrics "$OUT/$name.jsonl" 2>>"$OUT/stderr.log"
    jq -s --argjson w $WARMUP '[.[] | select(.type == "lm_step" and .step > $w) | .tokens_per_s]
      | (length / (map(1 / .) | add))' "$OUT/$name.jsonl"
  }
  peer() {  # name batches emb hid layers bs bptt
    (cd $PEER && "$PEER_PY" fastai_lm.py --text "$ABS_S" --emb "$3" --hid "$4" \
       --layers "$5" --bs "$6" --bptt "$7" --batches "$2" --warmup $WARMUP 2>>"$ABS_OUT/stderr.log" | tail -n1) \
      >"$OUT/$1.json"
    jq -r .tokens_per_s "$OUT/$1.json"
  }

  table=()
  for cfg in $CONFIGS; do
    if [ $cfg = tiny ]; then set -- 64 128 2 32 64; n=$TINY_BATCHES; else set -- 400 1152 3 64 72; n=$STD_BATCHES; fi
    F=$(flops_per_token "$1" "$2" "$3" "$V")
    fa=(); f32=(); b16=()
    for _ in $(seq "$ROUNDS"); do
      if have_peer; then fa+=("$(peer "fastai_$cfg" "$n" "$@")"); fi
      f32+=("$(ours "${cfg}_fp32" fp32 "$n" "$@")")
      b16+=("$(ours "${cfg}_bf16" bf16 "$n" "$@")")
    done
    m32=$(printf '%s\n' "${f32[@]}" | median); m16=$(printf '%s\n' "${b16[@]}" | median)
    mfa=$( [ ${#fa[@]} -gt 0 ] && printf '%s\n' "${fa[@]}" | median || echo "")
    label="$cfg (emb $1, hid $2, $3 layers, bs $4, bptt $5)"
    [ -n "$mfa" ] && table+=("$label|fastai 2.8.12, fp32 (peer)|$mfa|$mfa|$F|fp32")
    table+=("$label|lm-train fp32|$m32|$mfa|$F|fp32" "$label|lm-train bf16|$m16|$mfa|$F|bf16")
    printf '%s\n' "$cfg: fastai ${fa[*]:-} / fp32 ${f32[*]} / bf16 ${b16[*]}" >>"$OUT/rounds.txt"
  done
  matmul
  PEAK32=$(jq -s 'map(.fp32_gflops) | max' "$OUT/matmul.jsonl"); PEAK16=$(jq -s 'map(.bf16_gflops) | max' "$OUT/matmul.jsonl")
  # libtorch's fp32 matmul is MKL's sgemm, which on AMD CPUs runs far below the FMA units (its
  # AVX-512 paths are Intel-only) while oneDNN's LSTM kernels do not; with AVX512-BF16 the
  # bf16 dot product runs at twice the fp32 FMA rate, so bf16/2 bounds the fp32 peak from below
  MKL32=$PEAK32
  PEAK32=$(awk -v a="$PEAK32" -v b="$PEAK16" 'BEGIN { print (b / 2 > a) ? b / 2 : a }')
  echo "## Training speed on the CPU: imdb_sample (vocab $V), $THREADS threads"
  echo
  echo "Matmul peak with libtorch (4096³, best of before/after): bf16 $(printf %.0f "$PEAK16") GFLOP/s, fp32 $(printf %.0f "$MKL32") GFLOP/s (MKL sgemm);"
  echo "the fp32 percentages use max(fp32 sgemm, bf16 / 2) = $(printf %.0f "$PEAK32") GFLOP/s, since MKL's sgemm does not reach the FMA peak on AMD CPUs."
  echo
  echo "| config | run | tokens/s (median of $ROUNDS) | × fastai | MFLOP/token | GFLOP/s | % of matmul peak |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for r in "${table[@]}"; do
    IFS='|' read -r l name t fa f prec <<<"$r"
    p=$([ "$prec" = fp32 ] && echo "$PEAK32" || echo "$PEAK16")
    awk -v l="$l" -v r="$name" -v t="$t" -v fa="$fa" -v f="$f" -v p="$p" 'BEGIN {
      x = (fa == "") ? "–" : sprintf("%.2f", t / fa)
      printf "| %s | %s | %.0f | %s | %.1f | %.1f | %.1f%% |\n", l, r, t, x, f / 1e6, t * f / 1e9, 100 * t * f / 1e9 / p }'
  done
  echo
  echo "Per round (tokens/s): $(tr '\n' ';' <"$OUT/rounds.txt")"
  rm -f "$OUT/rounds.txt"
  echo
  echo "fastai: fastai_lm.py (BASELINES.md section 3 flags), tokens/s over its $STD_BATCHES/$TINY_BATCHES timed batches after $WARMUP warm-up. lm-train: the same"
  echo "number of steps after $WARMUP warm-up steps, from its lm_step records. FLOP/token counts the LSTM and decoder matmuls, forward + backward (3× forward)."
  echo
fi

if on memory; then
  L=$DATA/imdb_large/train.csv
  if [ ! -f "$OUT/large/manifest.json" ]; then
    $BIN/tokenize "$L" -q -o "$OUT/large.tokens.jsonl" --force
    $BIN/numericalize "$OUT/large.tokens.jsonl" -o "$OUT/large" --valid-pct 0.1 --seed 42 --force -q >/dev/null
  fi
  if [ ! -f "$OUT/large10/manifest.json" ]; then
    for _ in $(seq 10); do cat "$OUT/large.tokens.jsonl"; done \
      | $BIN/numericalize - --vocab "$OUT/large" -o "$OUT/large10" --valid-pct 0.1 --seed 42 --force -q >/dev/null
  fi
  rm -f "$OUT/large.tokens.jsonl"
  echo "## Peak RSS: standard config (emb 400, hid 1152, 3 layers, bs 64, bptt 72) on imdb_large/train.csv, $MEM_STEPS steps"
  echo
  echo "| corpus | train tokens | precision | peak RSS MiB | estimate (--dry-run) MiB | wall s |"
  echo "|---|---:|---|---:|---:|---:|"
  for run in "fp32 large" "fp32 large10" "bf16 large" "bf16 large10" "fp32 large 32" "bf16 large 32"; do
    read -r prec c micro <<<"$run"
    mb=(); [ -n "$micro" ] && mb=(--bs "$micro" --effective-bs 64)
    /usr/bin/time -f '%e %M' -o "$OUT/time.txt" $BIN/lm-train "$OUT/$c" -o "$OUT/ck_mem" --force \
      --steps "$MEM_STEPS" --valid-split none --precision $prec --threads "$THREADS" --progress none \
      "${mb[@]}" --metrics "$OUT/mem_${c}_$prec$micro.jsonl" 2>>"$OUT/stderr.log"
    read -r s m <"$OUT/time.txt"
    est=$($BIN/lm-train "$OUT/$c" --dry-run --precision $prec --threads "$THREADS" "${mb[@]}" | awk '/estimated peak RSS/ {
      v = $4; u = $5; printf "%.0f", (u == "GiB") ? v * 1024 : v }')
    T=$(jq -r '.splits.train.tokens' "$OUT/$c/manifest.json")
    name=$([ $c = large ] && echo "imdb_large/train (25k reviews)" || echo "the same × 10")
    [ -n "$micro" ] && prec="$prec, --bs $micro --effective-bs 64"
    echo "| $name | $T | $prec | $((m / 1024)) | $est | $s |"
  done
  echo
  echo "fastai on imdb_large/train (BASELINES.md section 3, lm_std_large): 5,310 MiB peak RSS."
  echo
fi
