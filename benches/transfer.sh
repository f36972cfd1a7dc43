#!/usr/bin/env bash
# Transfer table: does a language model pretrained on general English help on Shakespeare's
# and Chaucer's English, or must one train from scratch? Prints markdown (save it as
# benches/results/transfer.md); raw outputs in bench-out/transfer/.
#
#   general LM  WikiText-2 valid (Wikipedia) + the first GENERAL_DOCS reviews of
#               imdb_large/test.csv, fastai tokens, vocab max GENERAL_VOCAB; GENERAL_STEPS steps.
#   targets     tiny Shakespeare and Chaucer's Canterbury Tales (Ellesmere), a document per line
#               (`tokenize --format lines`; fastai's English rules, imperfect for Middle English),
#               each with its own vocab (`numericalize --valid-pct 0.1 --seed 42`, min_freq 3).
#   fine-tune   `--init general --remap-vocab`: ULMFiT's practice (fastai's match_embeds): the
#               target keeps its own vocab; rows of words the general LM knows are copied, the
#               others start from the mean embedding. (Applying the general vocab with
#               `numericalize --vocab` instead would turn most of Chaucer's words into xxunk and
#               make the perplexities incomparable with the from-scratch model's.)
#   scratch     the same model, same vocab, same data, same steps and schedule, random init.
#   Both report the validation perplexity of the same held-out 10% of lines.
#
# usage: benches/transfer.sh
# env: DATA (../shared/data), THREADS (nproc), GENERAL_STEPS (1000), TARGET_STEPS (300),
#      GENERAL_DOCS (4000), GENERAL_VOCAB (15000), LR (5e-3), DROP_MULT (0.5)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
DATA=${DATA:-../shared/data}
THREADS=${THREADS:-$(nproc)}
GENERAL_STEPS=${GENERAL_STEPS:-1000}
TARGET_STEPS=${TARGET_STEPS:-300}
GENERAL_DOCS=${GENERAL_DOCS:-4000}
GENERAL_VOCAB=${GENERAL_VOCAB:-15000}
LR=${LR:-5e-3}
DROP_MULT=${DROP_MULT:-0.5}
OUT=bench-out/transfer
mkdir -p "$OUT"
command -v jq >/dev/null || { echo "transfer.sh: needs jq" >&2; exit 2; }
[ -x $BIN/lm-train ] || { echo "transfer.sh: build first: cargo build --release -p lm-train -p tokenize -p numericalize" >&2; exit 2; }
MODEL=(--emb-sz 128 --n-hid 256 --n-layers 2 --bs 32 --bptt 64)
COMMON=(--threads "$THREADS" --progress none --drop-mult "$DROP_MULT" --precision fp32 --log-every 50 --seed 42)
t0=$SECONDS

# general corpus: WikiText-2 valid (one line per paragraph) + IMDb test reviews
{
  $BIN/tokenize "$DATA/wikitext-2/wiki.valid.tokens" --format lines -q
  $BIN/tokenize "$DATA/imdb_large/test.csv" -q | head -n "$GENERAL_DOCS"
} | $BIN/numericalize - -o "$OUT/general" --max-vocab "$GENERAL_VOCAB" --valid-pct 0.05 --seed 42 --force -q >/dev/null
$BIN/tokenize "$DATA/tinyshakespeare/input.txt" --format lines -q \
  | $BIN/numericalize - -o "$OUT/shakespeare" --valid-pct 0.1 --seed 42 --force -q >/dev/null
$BIN/tokenize "$DATA/chaucer-ellesmere/ellesmere_canterbury_tales.txt" --format lines -q \
  | $BIN/numericalize - -o "$OUT/chaucer" --valid-pct 0.1 --seed 42 --force -q >/dev/null

$BIN/lm-train "$OUT/general" -o "$OUT/lm_general" --force "${MODEL[@]}" "${COMMON[@]}" \
  --steps "$GENERAL_STEPS" --epochs 100 --lr "$LR" --metrics "$OUT/general.jsonl" 2>>"$OUT/stderr.log"

last_epoch() { jq -s '[.[] | select(.type == "lm_epoch")] | last' "$1"; }
init_line() { jq -s '[.[] | select(.type == "lm_init")] | last' "$1"; }

rows=()
for t in shakespeare chaucer; do
  $BIN/lm-train "$OUT/$t" -o "$OUT/lm_${t}_scratch" --force "${MODEL[@]}" "${COMMON[@]}" \
    --steps "$TARGET_STEPS" --epochs 100 --lr "$LR" --metrics "$OUT/${t}_scratch.jsonl" 2>>"$OUT/stderr.log"
  $BIN/lm-train "$OUT/$t" -o "$OUT/lm_${t}_finetune" --force "${MODEL[@]}" "${COMMON[@]}" \
    --init "$OUT/lm_general" --remap-vocab \
    --steps "$TARGET_STEPS" --epochs 100 --lr "$LR" --metrics "$OUT/${t}_finetune.jsonl" 2>>"$OUT/stderr.log"
  rows+=("$t")
done

m() { jq -r "$2" "$OUT/$1/manifest.json"; }
echo "# benches/transfer.sh on $(date -u +%Y-%m-%d) — $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $((SECONDS - t0)) s in all"
echo
echo "Model: AWD-LSTM emb 128, hid 256, 2 layers, bs 32, bptt 64, drop_mult $DROP_MULT, fp32; one-cycle lr $LR"
echo "(fastai's Adam, wd 0.01, AR/TAR on). Perplexity = exp(validation cross-entropy per token) on the target's held-out 10%."
echo
g=$(last_epoch "$OUT/general.jsonl")
echo "General LM: WikiText-2 valid + $GENERAL_DOCS IMDb test reviews, $(m general .splits.train.tokens) train tokens, vocab $(m general .vocab_size),"
echo "$GENERAL_STEPS steps ($(jq -r '.elapsed_s | floor' <<<"$g") s): validation perplexity $(jq -r '.perplexity * 10 | round / 10' <<<"$g")."
echo
echo "| target | train tokens | vocab | vocab rows found in the general LM | steps | from scratch: valid ppl | fine-tuned: valid ppl | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for t in "${rows[@]}"; do
  s=$(last_epoch "$OUT/${t}_scratch.jsonl"); f=$(last_epoch "$OUT/${t}_finetune.jsonl"); i=$(init_line "$OUT/${t}_finetune.jsonl")
  ps=$(jq -r .perplexity <<<"$s"); pf=$(jq -r .perplexity <<<"$f")
  name=$([ $t = shakespeare ] && echo "tiny Shakespeare" || echo "Chaucer (Ellesmere)")
  awk -v n="$name" -v tt="$(m $t .splits.train.tokens)" -v v="$(m $t .vocab_size)" \
      -v mt="$(jq -r .matched_tokens <<<"$i")" -v st="$TARGET_STEPS" -v ps="$ps" -v pf="$pf" \
      'BEGIN { printf "| %s | %d | %d | %d (%.0f%%) | %d | %.1f | %.1f | %.2f× |\n", n, tt, v, mt, 100 * mt / v, st, ps, pf, ps / pf }'
done
echo
echo "Ratio > 1: the fine-tuned model is better (lower perplexity) at the same number of steps."
