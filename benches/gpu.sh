#!/usr/bin/env bash
# lm-train and clf-train on a CUDA GPU: the standard LM config (emb 400, hid 1152, 3 layers,
# bs 64, bptt 72) for a few hundred steps in fp32, bf16 and fp16 (loss scaling), `--bs auto`,
# and one classifier epoch per precision on top of the bf16 LM; prints tokens/s, peak GPU
# memory, loss curves and accuracy as markdown.
#
# usage: benches/gpu.sh [STEPS]              run and report (default STEPS 300)
#        benches/gpu.sh --report [DIR]       only the report, from a run's DIR (default bench-out/gpu)
# env:   DATA (../shared/data), PRECISIONS ("fp32 bf16 fp16"), DEVICE (cuda), CLF_EPOCHS (1),
#        BIN (target/release; built when missing), SHARDS (a prebuilt shard set with a label
#        column; default: made from imdb_large/train.csv), OUT (bench-out/gpu), CLF_ARGS (more
#        clf-train flags)
#
# The run phase needs only the binaries, libtorch with CUDA and nvidia-smi, so it also runs on a
# machine without Rust or jq (copy the stripped binaries and a shard set there); the report
# phase needs jq and can run anywhere on the fetched DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release}
DATA=${DATA:-../shared/data}
PRECISIONS=${PRECISIONS:-fp32 bf16 fp16}
DEVICE=${DEVICE:-cuda}
CLF_EPOCHS=${CLF_EPOCHS:-1}
OUT=${OUT:-bench-out/gpu}

# rows DIR KIND JQ: one table row per DIR/KIND_<precision>.jsonl, from the jq program JQ, which
# gets $p (the precision), $peak (peak GPU MiB above idle) and $wall (seconds).
rows() {
  local dir=$1 kind=$2 prog=$3 idle f p peak
  idle=$(cat "$dir/idle_mib")
  for f in "$dir/${kind}"_*.jsonl; do
    [ -s "$f" ] || continue
    p=${f##*/"${kind}"_}; p=${p%.jsonl}
    peak=$(sort -n "$dir/mem_${kind}_$p.txt" | tail -1)
    jq -rs --arg p "$p" --argjson peak "$((peak - idle))" --arg wall "$(cat "$dir/wall_${kind}_$p")" "$prog" "$f"
  done
}

report() {
  local dir=$1
  command -v jq >/dev/null || { echo "gpu.sh: the report needs jq" >&2; exit 2; }
  local steps
  steps=$(cat "$dir/steps")
  echo "# benches/gpu.sh on $(cat "$dir/date") — $(cat "$dir/gpu")"
  echo
  echo "Standard config on $(cat "$dir/source") (vocab $(jq -r .vocab_size "$dir/shards.manifest.json")), $steps steps,"
  echo "one-cycle lr 2e-3, drop_mult 0.3. Peak GPU memory: the largest nvidia-smi memory.used sample"
  echo "(every 200 ms) minus the idle value; it includes the CUDA context and PyTorch's caching allocator."
  echo
  echo "| precision | tokens/s (steps 21..$steps) | peak GPU MiB | loss at step 10 | 100 | 200 | last | wall s |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  rows "$dir" lm '
      [.[] | select(.type == "lm_step")] as $s
      | ([$s[] | select(.step > 20) | .tokens_per_s]) as $t
      | def loss(n): ([$s[] | select(.step == n) | .train_loss][0] // null | if . == null then "–" else (. * 1000 | round / 1000 | tostring) end);
        "| \($p) | \(if ($t | length) > 0 then ($t | length) / ($t | map(1 / .) | add) | round else "–" end) | \($peak) | \(loss(10)) | \(loss(100)) | \(loss(200)) | \($s[-1].train_loss * 1000 | round / 1000) | \($wall) |"'
  echo
  if [ -s "$dir/auto.jsonl" ]; then
    echo "\`--bs auto --effective-bs 512\` (bf16):"
    jq -r 'select(.type == "lm_memory" or .type == "lm_start" or .type == "lm_backoff")
      | "- \(.type): micro_bs \(.micro_bs // "–"), accumulation \(.accum_steps // "–")"' "$dir/auto.jsonl"
    echo
  fi
  if ls "$dir"/clf_*.jsonl >/dev/null 2>&1; then
    echo "Classifier on the bf16 LM's encoder, $CLF_EPOCHS epoch(s) with the head and all layers unfrozen:"
    echo
    echo "| precision | valid accuracy | valid loss | peak GPU MiB | wall s |"
    echo "|---|---:|---:|---:|---:|"
    rows "$dir" clf '
      [.[] | select(.type == "clf_epoch")][-1] as $e
      | "| \($p) | \($e.accuracy * 1000 | round / 1000) | \($e.valid_loss * 1000 | round / 1000) | \($peak) | \($wall) |"'
    echo
  fi
  echo "Loss curves (every 10 steps): $dir/lm_<precision>.jsonl (lm_step records)."
}

if [ "${1:-}" = "--report" ]; then
  report "${2:-$OUT}"
  exit 0
fi
STEPS=${1:-300}
command -v nvidia-smi >/dev/null || { echo "gpu.sh: no nvidia-smi: not a GPU machine" >&2; exit 2; }
if [ ! -x "$BIN/lm-train" ]; then
  eval "$(scripts/libtorch.sh)"
  cargo build --release -p lm-train -p clf-train -p tokenize -p numericalize
fi
mkdir -p "$OUT"
if [ -n "${SHARDS:-}" ]; then
  echo "prebuilt shards" >"$OUT/source"
else
  if [ -f "$DATA/imdb_large/train.csv" ]; then SRC=$DATA/imdb_large/train.csv; else SRC=$DATA/imdb_sample/texts.csv; fi
  basename "$(dirname "$SRC")" >"$OUT/source"
  SHARDS=$OUT/shards
  [ -f "$SHARDS/manifest.json" ] || $BIN/tokenize "$SRC" --keep label -q |
    $BIN/numericalize - -o "$SHARDS" --valid-pct 0.1 --seed 42 --force -q >/dev/null
fi
cp "$SHARDS/manifest.json" "$OUT/shards.manifest.json"
echo "$STEPS" >"$OUT/steps"
date -u +%Y-%m-%d >"$OUT/date"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1 >"$OUT/gpu"
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1 >"$OUT/idle_mib"

# run NAME CMD...: CMD with nvidia-smi sampling memory.used into mem_NAME.txt, wall time into wall_NAME
run() {
  local name=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$OUT/mem_$name.txt" &
  local smi=$! t0; t0=$(date +%s.%N)
  "$@" 2>>"$OUT/stderr.log" || echo "gpu.sh: $name failed (see $OUT/stderr.log)" >&2
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' >"$OUT/wall_$name"
  kill $smi 2>/dev/null || true; wait $smi 2>/dev/null || true
}
for p in $PRECISIONS; do
  run "lm_$p" $BIN/lm-train "$SHARDS" -o "$OUT/ck_$p" --force --device "$DEVICE" --precision "$p" \
    --steps "$STEPS" --log-every 10 --valid-split none --progress none --drop-mult 0.3 --lr 2e-3 \
    --metrics "$OUT/lm_$p.jsonl"
done
# --bs auto on the GPU: probes forward+backward until CUDA runs out of memory (or the batch fits)
run auto $BIN/lm-train "$SHARDS" -o "$OUT/ck_auto" --force --device "$DEVICE" --precision bf16 --bs auto \
  --effective-bs 512 --steps 3 --valid-split none --progress none --metrics "$OUT/auto.jsonl"
if [ -x "$BIN/clf-train" ] && [ -f "$OUT/ck_bf16/model.safetensors" ]; then
  for p in $PRECISIONS; do
    run "clf_$p" $BIN/clf-train "$SHARDS" --encoder "$OUT/ck_bf16" -o "$OUT/clf_$p" --force \
      --device "$DEVICE" --precision "$p" --unfreeze "all:2e-3x$CLF_EPOCHS" --metrics "$OUT/clf_$p.jsonl" ${CLF_ARGS:-}
  done
fi
rm -rf "$OUT"/ck_* "$OUT"/clf_*/ 2>/dev/null || true
if command -v jq >/dev/null; then report "$OUT"; else echo "gpu.sh: no jq here; run benches/gpu.sh --report $OUT where jq is"; fi
