#!/usr/bin/env bash
# lm-train on a CUDA GPU: the standard config (emb 400, hid 1152, 3 layers, bs 64, bptt 72) for
# a few hundred steps in fp32, bf16 and fp16 (loss scaling); prints tokens/s, peak GPU memory
# and the loss curve as markdown. For a session with a GPU; needs libtorch with CUDA
# (scripts/libtorch.sh installs PyPI torch 2.11.0+cu130) and nvidia-smi.
#
# usage: benches/gpu.sh [STEPS]                   (default 300)
# env:   DATA (../shared/data), PRECISIONS ("fp32 bf16 fp16"), DEVICE (cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
DATA=${DATA:-../shared/data}
STEPS=${1:-300}
PRECISIONS=${PRECISIONS:-fp32 bf16 fp16}
DEVICE=${DEVICE:-cuda}
OUT=bench-out/gpu
mkdir -p "$OUT"
command -v nvidia-smi >/dev/null || { echo "gpu.sh: no nvidia-smi: not a GPU machine" >&2; exit 2; }
command -v jq >/dev/null || { echo "gpu.sh: needs jq" >&2; exit 2; }
if [ ! -x $BIN/lm-train ]; then
  eval "$(scripts/libtorch.sh)"
  cargo build --release -p lm-train -p tokenize -p numericalize
fi
if [ -f "$DATA/imdb_large/train.csv" ]; then SRC=$DATA/imdb_large/train.csv; else SRC=$DATA/imdb_sample/texts.csv; fi
if [ ! -f "$OUT/shards/manifest.json" ]; then
  $BIN/tokenize "$SRC" -q | $BIN/numericalize - -o "$OUT/shards" --valid-pct 0.1 --seed 42 --force -q >/dev/null
fi
V=$(jq -r .vocab_size "$OUT/shards/manifest.json")
GPU=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)
echo "# benches/gpu.sh on $(date -u +%Y-%m-%d) — $GPU"
echo
echo "Standard config on $(basename "$(dirname "$SRC")") (vocab $V), $STEPS steps, one-cycle lr 2e-3, drop_mult 0.3."
echo "Peak GPU memory: the largest nvidia-smi memory.used sample (every 200 ms) minus the idle value:"
echo "it includes the CUDA context and PyTorch's caching allocator (tch exposes no allocator statistics)."
echo
echo "| precision | tokens/s (steps 21..$STEPS) | peak GPU MiB | loss at step 10 | 100 | 200 | last |"
echo "|---|---:|---:|---:|---:|---:|---:|"
idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
for p in $PRECISIONS; do
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$OUT/mem_$p.txt" &
  smi=$!
  $BIN/lm-train "$OUT/shards" -o "$OUT/ck_$p" --force --device "$DEVICE" --precision "$p" \
    --steps "$STEPS" --log-every 10 --valid-split none --progress none --drop-mult 0.3 --lr 2e-3 \
    --metrics "$OUT/$p.jsonl" 2>>"$OUT/stderr.log" || echo "| $p | failed: see $OUT/stderr.log | | | | | |"
  kill $smi 2>/dev/null || true; wait $smi 2>/dev/null || true
  [ -s "$OUT/$p.jsonl" ] || continue
  peak=$(sort -n "$OUT/mem_$p.txt" | tail -1)
  jq -rs --arg p "$p" --argjson peak "$((peak - idle))" '
    [.[] | select(.type == "lm_step")] as $s
    | ([$s[] | select(.step > 20) | .tokens_per_s]) as $t
    | def loss(n): ([$s[] | select(.step == n) | .train_loss][0] // null | if . == null then "–" else (. * 1000 | round / 1000 | tostring) end);
      "| \($p) | \(if ($t | length) > 0 then ($t | length) / ($t | map(1 / .) | add) | round else "–" end) | \($peak) | \(loss(10)) | \(loss(100)) | \(loss(200)) | \($s[-1].train_loss * 1000 | round / 1000) |"' \
    "$OUT/$p.jsonl"
done
echo
# --bs auto on the GPU: probes forward+backward until CUDA runs out of memory (or the batch fits)
$BIN/lm-train "$OUT/shards" -o "$OUT/ck_auto" --force --device "$DEVICE" --precision bf16 --bs auto \
  --effective-bs 512 --steps 3 --valid-split none --progress none --metrics "$OUT/auto.jsonl" 2>>"$OUT/stderr.log" || true
jq -r 'select(.type == "lm_memory" or .type == "lm_start" or .type == "lm_backoff")
  | "- \(.type): micro_bs \(.micro_bs), accumulation \(.accum_steps // "–")"' "$OUT/auto.jsonl" 2>/dev/null || true
echo
echo "Loss curves (every 10 steps): $OUT/<precision>.jsonl (lm_step records)."
