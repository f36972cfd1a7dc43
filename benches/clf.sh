#!/usr/bin/env bash
# clf-train against fastai's ULMFiT recipe (../shared/peer/fastai_clf.py), whole processes, in
# one run on one machine. Prints markdown (save it as benches/results/clf.md); raw outputs go
# to bench-out/clf/.
#
# usage: benches/clf.sh [recipe] [transfer] [druglib]        (default: all three)
#   recipe    BASELINES.md section 5 on imdb_sample (800 train / 200 valid): an LM from scratch on
#             all 1,000 texts (valid_pct 0.1; emb 128, hid 256, 2 layers, bs 32, bptt 72,
#             3 epochs at 1e-2, drop_mult 0.3), then the classifier (drop_mult 0.5) with the
#             lesson's gradual unfreezing (2e-2; 1e-2; 5e-3; 1e-3 × 4 epochs). fastai and ours
#             alternate, per seed in SEEDS; accuracy on the 200 valid reviews and wall seconds
#             of the whole pipeline (ours: tokenize → numericalize → lm-train → clf-train, every
#             process; fastai: its script's total_s, which leaves out its ~5 s of imports).
#   transfer  the row fastai cannot afford on the CPU: an LM first trained on imdb_large/test.csv
#             (GENERAL_STEPS steps; disjoint from the sample, which comes from aclImdb's train
#             split), fine-tuned on the sample (`--init --remap-vocab`, 3 epochs), then the same
#             classifier recipe. Accuracy and wall time per stage.
#   druglib   regression: Druglib review texts (benefits, side effects, comments as xxfld
#             fields) → rating 1–10 with --y-range 0.5 10.5; LM fine-tuned from the transfer
#             run's general LM when it exists (else from scratch); MAE, RMSE and R² on the
#             1,036 test reviews against predicting the training mean.
# env: DATA (../shared/data), PEER_PY (~/.cache/peer-venv/bin/python; fastai rows skipped if
#      absent), SEEDS ("42"), THREADS (nproc), GENERAL_STEPS (1000)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
DATA=${DATA:-../shared/data}
PEER=../shared/peer
PEER_PY=${PEER_PY:-$HOME/.cache/peer-venv/bin/python}
SEEDS=${SEEDS:-42}
THREADS=${THREADS:-$(nproc)}
GENERAL_STEPS=${GENERAL_STEPS:-1000}
OUT=bench-out/clf
mkdir -p "$OUT"
for t in jq /usr/bin/time; do
  command -v $t >/dev/null || { echo "clf.sh: needs $t (apt-get install jq time)" >&2; exit 2; }
done
for b in tokenize numericalize lm-train clf-train; do
  [ -x $BIN/$b ] || { echo "clf.sh: build first: cargo build --release --workspace" >&2; exit 2; }
done
[ -f "$DATA/imdb_sample/texts.csv" ] || { echo "clf.sh: $DATA/imdb_sample/texts.csv not found" >&2; exit 2; }
sel=("$@")
on() { [ ${#sel[@]} -eq 0 ] && return 0; for s in "${sel[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
have_peer() { [ -x "$PEER_PY" ]; }
mean() { awk '{s+=$1; n++} END {if (n) printf "%.4f", s/n}'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b-a}'; }

MODEL=(--emb-sz 128 --n-hid 256 --n-layers 2)
LM=(--bs 32 --bptt 72 --epochs 3 --lr 1e-2 --drop-mult 0.3 --precision fp32)
SCHED='1:2e-2,2:1e-2,3:5e-3,all:1e-3x4'
CLF=(--bs 32 --bptt 72 --unfreeze "$SCHED" --precision fp32)
Q=(--threads "$THREADS" -q --progress none)

last_valid() {  # metrics file → accuracy of the last clf_epoch record
  jq -rs '[.[] | select(.type == "clf_epoch")] | last | .valid.accuracy // .accuracy // .valid_accuracy' "$1"
}

# ours: the whole pipeline for one seed; prints "accuracy seconds"
ours_recipe() {
  local seed=$1 d="$OUT/recipe_$1" t0 acc
  rm -rf "$d"; mkdir -p "$d"
  t0=$(now)
  $BIN/tokenize "$DATA/imdb_sample/texts.csv" --keep label --keep is_valid -q -o "$d/tokens.jsonl"
  $BIN/numericalize "$d/tokens.jsonl" -o "$d/lm_shards" --valid-pct 0.1 --seed "$seed" -q >/dev/null
  $BIN/numericalize "$d/tokens.jsonl" --vocab "$d/lm_shards" -o "$d/clf_shards" --split-col is_valid -q >/dev/null
  $BIN/lm-train "$d/lm_shards" -o "$d/lm" "${MODEL[@]}" "${LM[@]}" --seed "$seed" "${Q[@]}" --metrics "$d/lm.jsonl"
  $BIN/clf-train "$d/clf_shards" --encoder "$d/lm" -o "$d/clf" "${CLF[@]}" --seed "$seed" "${Q[@]}" --metrics "$d/clf.jsonl"
  acc=$(last_valid "$d/clf.jsonl")
  echo "$acc $(secs "$t0" "$(now)")"
}

fastai_recipe() {
  local seed=$1 f="$OUT/fastai_$1.json"
  (cd $PEER && "$PEER_PY" fastai_clf.py --csv "$OLDPWD/$DATA/imdb_sample/texts.csv" --emb 128 --hid 256 \
    --layers 2 --bs 32 --bptt 72 --lm-epochs 3 --lm-lr 1e-2 --lr 2e-2 --epochs 4 --seed "$seed" \
    2>"$OLDPWD/$OUT/fastai_$seed.log" | tail -1) >"$f"
  jq -r '"\(.valid_accuracy) \(.total_s)"' "$f"
}

if on recipe; then
  echo "## The fastai_clf.py recipe on imdb_sample (emb 128, hid 256, 2 layers; $THREADS threads)"
  echo
  echo "| seed | fastai accuracy | ours accuracy | fastai s (script's total_s) | ours s (every process) |"
  echo "|---:|---:|---:|---:|---:|"
  : >"$OUT/recipe.tsv"
  for s in $SEEDS; do
    if have_peer; then read -r fa ft < <(fastai_recipe "$s"); else fa=n/a; ft=n/a; fi
    read -r oa ot < <(ours_recipe "$s")
    printf '%s\t%s\t%s\t%s\t%s\n' "$s" "$fa" "$oa" "$ft" "$ot" >>"$OUT/recipe.tsv"
    echo "| $s | $fa | $oa | $ft | $ot |"
  done
  if [ "$(wc -l <"$OUT/recipe.tsv")" -gt 1 ]; then
    echo "| mean | $(cut -f2 "$OUT/recipe.tsv" | mean) | $(cut -f3 "$OUT/recipe.tsv" | mean) | $(cut -f4 "$OUT/recipe.tsv" | mean) | $(cut -f5 "$OUT/recipe.tsv" | mean) |"
  fi
  echo
fi

GEN="$OUT/general"
if on transfer; then
  d="$OUT/transfer"; rm -rf "$d"; mkdir -p "$d"
  t0=$(now)
  $BIN/tokenize "$DATA/imdb_large/test.csv" -q \
    | $BIN/numericalize - -o "$d/general_shards" --max-vocab 15000 --valid-pct 0.02 --seed 42 -q >/dev/null
  $BIN/lm-train "$d/general_shards" -o "$d/lm_general" "${MODEL[@]}" --bs 32 --bptt 72 --lr 1e-2 \
    --drop-mult 0.3 --precision fp32 --epochs 100 --steps "$GENERAL_STEPS" --seed 42 "${Q[@]}" --metrics "$d/general.jsonl"
  t1=$(now)
  $BIN/tokenize "$DATA/imdb_sample/texts.csv" --keep label --keep is_valid -q -o "$d/tokens.jsonl"
  $BIN/numericalize "$d/tokens.jsonl" -o "$d/lm_shards" --valid-pct 0.1 --seed 42 -q >/dev/null
  $BIN/numericalize "$d/tokens.jsonl" --vocab "$d/lm_shards" -o "$d/clf_shards" --split-col is_valid -q >/dev/null
  $BIN/lm-train "$d/lm_shards" -o "$d/lm" --init "$d/lm_general" --remap-vocab "${LM[@]}" --seed 42 "${Q[@]}" --metrics "$d/lm.jsonl"
  $BIN/clf-train "$d/clf_shards" --encoder "$d/lm" -o "$d/clf" "${CLF[@]}" --seed 42 "${Q[@]}" --metrics "$d/clf.jsonl"
  t2=$(now)
  rm -rf "$GEN"; cp -r "$d/lm_general" "$GEN"
  gtok=$(jq -rs '[.[] | select(.type == "lm_epoch" or .type == "lm_end")] | last | .tokens // .train_tokens // empty' "$d/general.jsonl")
  gval=$(jq -rs '[.[] | select(.type == "lm_epoch")] | last | .valid_loss' "$d/general.jsonl")
  ftval=$(jq -rs '[.[] | select(.type == "lm_epoch")] | last | .valid_loss' "$d/lm.jsonl")
  acc=$(last_valid "$d/clf.jsonl")
  echo "## Transfer: LM pretrained on imdb_large/test.csv, then the recipe (seed 42)"
  echo
  echo "| stage | result | wall s |"
  echo "|---|---|---:|"
  echo "| general LM ($GENERAL_STEPS steps of 32 × 72 tokens${gtok:+, $gtok tokens}) | valid loss $gval | $(secs "$t0" "$t1") |"
  echo "| fine-tune on imdb_sample (3 epochs) + classifier | LM valid loss $ftval; **accuracy $acc** | $(secs "$t1" "$t2") |"
  echo
fi

if on druglib; then
  d="$OUT/druglib"; rm -rf "$d"; mkdir -p "$d"
  t0=$(now)
  TXT=(--text-col benefitsReview --text-col sideEffectsReview --text-col commentsReview --keep rating)
  { $BIN/tokenize "$DATA/druglib-reviews/drugLibTrain_raw.tsv" "${TXT[@]}" -q | sed 's/}$/,"part":"train"}/'
    $BIN/tokenize "$DATA/druglib-reviews/drugLibTest_raw.tsv" "${TXT[@]}" -q | sed 's/}$/,"part":"valid"}/'
  } >"$d/tokens.jsonl"
  $BIN/numericalize "$d/tokens.jsonl" -o "$d/lm_shards" --valid-pct 0.1 --seed 42 -q >/dev/null
  $BIN/numericalize "$d/tokens.jsonl" --vocab "$d/lm_shards" -o "$d/clf_shards" --split-col part -q >/dev/null
  if [ -d "$GEN" ]; then init=(--init "$GEN" --remap-vocab); from="LM fine-tuned from the general one"
  else init=("${MODEL[@]}"); from="LM from scratch"; fi
  $BIN/lm-train "$d/lm_shards" -o "$d/lm" "${init[@]}" "${LM[@]}" --seed 42 "${Q[@]}" --metrics "$d/lm.jsonl"
  $BIN/clf-train "$d/clf_shards" --encoder "$d/lm" -o "$d/clf" --label-col rating --task regression \
    --y-range 0.5 10.5 "${CLF[@]}" --seed 42 "${Q[@]}" --metrics "$d/clf.jsonl"
  $BIN/clf-train predict --ckpt "$d/clf" "$d/clf_shards" --split valid -q >"$d/preds.jsonl"
  t1=$(now)
  # the baseline: predict the training split's mean rating for every test review
  tmean=$(jq -rs '[.[] | select(.part == "train") | .rating | tonumber] | add / length' "$d/tokens.jsonl")
  jq -rs --argjson m "$tmean" '
    [.[] | {y: (.rating | tonumber), p: .pred}] as $r
    | ($r | length) as $n
    | ([$r[].y] | add / $n) as $ym
    | ([$r[] | (.y - .p) | fabs] | add / $n) as $mae
    | ([$r[] | (.y - .p) * (.y - .p)] | add / $n) as $mse
    | ([$r[] | (.y - $m) | fabs] | add / $n) as $mae0
    | ([$r[] | (.y - $m) * (.y - $m)] | add / $n) as $mse0
    | ([$r[] | (.y - $ym) * (.y - $ym)] | add / $n) as $var
    | "\($n) \($mae) \($mse | sqrt) \(1 - $mse / $var) \($mae0) \($mse0 | sqrt) \(1 - $mse0 / $var)"' \
    "$d/preds.jsonl" >"$d/summary.txt"
  read -r n mae rmse r2 mae0 rmse0 r20 <"$d/summary.txt"
  echo "## Regression: Druglib ratings (1–10) from review text ($n test reviews)"
  echo
  echo "| model | MAE | RMSE | R² |"
  echo "|---|---:|---:|---:|"
  printf '| predict the training mean (%.2f) | %.3f | %.3f | %.3f |\n' "$tmean" "$mae0" "$rmse0" "$r20"
  printf '| ULMFiT regressor (%s) | **%.3f** | %.3f | **%.3f** |\n' "$from" "$mae" "$rmse" "$r2"
  echo
  echo "Wall time, tokenize to predictions: $(secs "$t0" "$t1") s."
  echo
fi
