#!/usr/bin/env bash
# A bias audit on real free text: Tate artworks (title + medium), audited by artist gender.
#
#   examples/tate/run.sh
#
# Task: from an artwork's title and medium, predict whether Tate acquired it in 1990 or later
# (`recent`) or before (`earlier`). Artist gender is never in the text; it is the protected
# attribute (Female / Male; the 725 works whose contributors have no or mixed genders are left
# out). Train and test are split by artist (artists whose first id is divisible by 5 are the
# test set), since 57% of the collection is Turner's sketchbook pages.
# Pipeline: tokenize (title and medium as two fields, fastai's xxfld markers) → jq (label,
# split) → numericalize → lm-train (small AWD-LSTM, every text) → clf-train → predict →
# bias-audit (privileged Male, favorable `recent`) → bias-audit probe --balanced (LM and
# classifier; 96% of the works are by men, so the probe weighs the groups equally).
#
# Knobs (environment): EVERY (classifier on every EVERY-th work, default 2), LM_EPOCHS,
# UNFREEZE, THREADS, OUT (default out/tate), DATA (the tate-artworks folder). Stages whose
# output exists are reused; FORCE=1 redoes everything. Needs jq.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-$ROOT/target/release}
OUT=${OUT:-$ROOT/out/tate}
DATA=${DATA:-$ROOT/../shared/data/tate-artworks}
EVERY=${EVERY:-2}
LM_EPOCHS=${LM_EPOCHS:-1}
UNFREEZE=${UNFREEZE:-1:2e-2,all:5e-3x2}
THREADS=${THREADS:-2}
FORCE=${FORCE:-0}
MODEL=(--emb-sz 64 --n-hid 128 --n-layers 2)
COMMON=(--device cpu --precision fp32 --threads "$THREADS" --progress none)
PROBE=(--device cpu --threads "$THREADS" --progress none)

for t in tokenize numericalize lm-train clf-train bias-audit; do
  [[ -x $B/$t ]] || { echo "run.sh: $B/$t not found; build first: make build" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "run.sh: jq is needed (labels, split, table)" >&2; exit 2; }
[[ -f $DATA/artworks.csv ]] || { echo "run.sh: $DATA/artworks.csv not found (set DATA)" >&2; exit 2; }
mkdir -p "$OUT"
cd "$OUT"
todo() { [[ $FORCE == 1 || ! -e $1 ]]; }
trained() { [[ $FORCE != 1 ]] && grep -qs '"done": true' "$1/train_state.json"; }

if todo tokens.jsonl; then
  "$B/tokenize" "$DATA/artworks.csv" --text-col title --text-col medium \
    --keep acquisition_year --keep artist_gender --keep artist_ids -q \
    | jq -c 'select((.artist_gender == "Female" or .artist_gender == "Male")
                    and ((.acquisition_year // "") | test("^[0-9]+$"))
                    and ((.artist_ids // "") | test("^[0-9]+")))
             | {tokens,
                label: (if (.acquisition_year | tonumber) >= 1990 then "recent" else "earlier" end),
                gender: .artist_gender,
                is_valid: ((.artist_ids | split(";")[0] | tonumber) % 5 == 0 | tostring)}' \
    > tokens.jsonl
fi
todo lm_shards && "$B/numericalize" tokens.jsonl -o lm_shards --valid-pct 0.1 --seed 42 --force -q
if todo clf_shards; then
  awk -v k="$EVERY" '(NR - 1) % k == 0' tokens.jsonl > clf_tokens.jsonl
  "$B/numericalize" clf_tokens.jsonl --vocab lm_shards -o clf_shards --split-col is_valid --force -q
fi
if todo lm; then
  "$B/lm-train" lm_shards -o lm "${MODEL[@]}" --bs 128 --bptt 72 --epochs "$LM_EPOCHS" --lr 1e-2 \
    --drop-mult 0.3 "${COMMON[@]}" --metrics lm.jsonl --force
fi
if ! trained clf; then
  if [[ -d clf && $FORCE != 1 ]]; then
    "$B/clf-train" clf_shards -o clf --resume "${COMMON[@]}" --metrics clf.resumed.jsonl -q
  else
    "$B/clf-train" clf_shards --encoder lm -o clf --bs 64 --unfreeze "$UNFREEZE" --drop-mult 0.5 \
      "${COMMON[@]}" --metrics clf.jsonl --force -q
  fi
fi
if todo audit.json; then
  "$B/clf-train" predict --ckpt clf clf_shards --split valid -o preds.jsonl --force --device cpu
  "$B/bias-audit" preds.jsonl --y-true label --y-pred pred --favorable recent \
    --protected gender --privileged Male --bootstrap 200 --seed 1 --json-out audit.json --force -q \
    > audit.txt || true
fi
todo probe_lm.json && "$B/bias-audit" probe --ckpt lm --shards clf_shards --protected gender --balanced \
  --json-out probe_lm.json --force "${PROBE[@]}" > /dev/null
todo probe_clf.json && "$B/bias-audit" probe --ckpt clf --shards clf_shards --protected gender --balanced \
  --json-out probe_clf.json --force "${PROBE[@]}" > /dev/null

a=audit.json
echo "Tate artworks, title + medium → acquired since 1990; test set: $(jq '.rows' $a) works by held-out artists ($(jq '.n_unprivileged' $a) by women)"
printf '%-34s %s\n' "majority-class accuracy" "$(jq '[.aif360.per_group.overall.base_rate] | map(if . > 0.5 then . else 1 - . end) | .[0]' $a)"
printf '%-34s %s\n' "accuracy" "$(jq '.aif360.per_group.overall.accuracy' $a)"
for g in privileged unprivileged; do
  printf '%-34s %s\n' "$g: base rate / selection rate" \
    "$(jq -r ".aif360.per_group.$g | \"\(.base_rate) / \(.selection_rate)\"" $a)"
done
for m in disparate_impact statistical_parity_difference equal_opportunity_difference average_odds_difference; do
  printf '%-34s %s  [95%% CI %s]\n' "$m" "$(jq ".aif360.$m" $a)" \
    "$(jq -r ".bootstrap.intervals.$m | \"\(.low), \(.high)\"" $a)"
done
for p in lm clf; do
  printf '%-34s %s (majority baseline %s); balanced accuracy %s; AUC %s\n' "probe accuracy for gender ($p)" \
    "$(jq '.accuracy' probe_$p.json)" "$(jq '.majority_accuracy' probe_$p.json)" \
    "$(jq '.balanced_accuracy' probe_$p.json)" "$(jq '.auc' probe_$p.json)"
done
