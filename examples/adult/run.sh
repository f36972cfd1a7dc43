#!/usr/bin/env bash
# Adversarial debiasing on UCI Adult written as text, end to end, and the table of results.
#
#   examples/adult/run.sh                 # the documented run (a quarter of the rows; see below)
#   EVERY=1 examples/adult/run.sh         # every row: 32,561 train / 16,281 test
#   ALPHAS="0.3 1" examples/adult/run.sh  # several adversary weights, one row each
#
# Each person of adult.data / adult.test becomes a sentence from every column except `sex`
# (adult_to_text.sh); `sex` is kept aside as the protected attribute, but relationship
# (Husband / Wife) and occupation still leak it. Pipeline: tokenize → numericalize (one vocab)
# → lm-train (a small AWD-LSTM on every text) → clf-train without and with
# `--adversary sex` (and with `--reweigh sex`) → predict on adult.test → bias-audit (privileged Male, favorable >50K)
# and bias-audit probe (can a logistic probe read `sex` off the encoder's features?).
#
# Stages whose output exists are reused (an interrupted classifier is resumed).
# Knobs (environment): EVERY (keep every EVERY-th person for the classifier, default 4, so a
# run takes minutes on 2 shared cores), ALPHAS (adversary weights, default "1"), REWEIGH (1:
# also a `--reweigh sex` run, default), ADV_LR,
# ADV_MODE, LM_EPOCHS, UNFREEZE, THREADS, OUT (default out/adult), DATA (the uci-adult folder).
# FORCE=1 redoes everything.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${B:-$ROOT/target/release}
OUT=${OUT:-$ROOT/out/adult}
DATA=${DATA:-$ROOT/../shared/data/uci-adult}
EVERY=${EVERY:-4}
ALPHAS=${ALPHAS:-1}
ADV_LR=${ADV_LR:-1e-2}
ADV_MODE=${ADV_MODE:-odds}
LM_EPOCHS=${LM_EPOCHS:-1}
UNFREEZE=${UNFREEZE:-1:2e-2,all:5e-3x2}
THREADS=${THREADS:-1}
REWEIGH=${REWEIGH:-1}
FORCE=${FORCE:-0}
MODEL=(--emb-sz 64 --n-hid 128 --n-layers 2)
COMMON=(--device cpu --precision fp32 --threads "$THREADS" --progress none)
PROBE=(--device cpu --threads "$THREADS" --progress none)

for t in tokenize numericalize lm-train clf-train bias-audit; do
  [[ -x $B/$t ]] || { echo "run.sh: $B/$t not found; build first: make build" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "run.sh: jq is needed to print the table" >&2; exit 2; }
[[ -f $DATA/adult.data ]] || { echo "run.sh: $DATA/adult.data not found (set DATA)" >&2; exit 2; }
mkdir -p "$OUT"
cd "$OUT"
todo() { [[ $FORCE == 1 || ! -e $1 ]]; }
# a classifier is done when its checkpoint says so (an interrupted one is continued)
trained() { [[ $FORCE != 1 ]] && grep -qs '"done": true' "$1/train_state.json"; }

if todo tokens.jsonl; then
  "$ROOT/examples/adult/adult_to_text.sh" "$DATA" > adult.csv
  "$B/tokenize" adult.csv --keep label --keep sex --keep race --keep is_valid > tokens.jsonl
fi
# the language model reads every text (ULMFiT fine-tunes the LM on all the task's text)
todo lm_shards && "$B/numericalize" tokens.jsonl -o lm_shards --valid-pct 0.1 --seed 42 --force -q
# the classifier: every EVERY-th person, adult.data → train, adult.test → valid
if todo clf_shards; then
  awk -v k="$EVERY" '(NR - 1) % k == 0' tokens.jsonl > clf_tokens.jsonl
  "$B/numericalize" clf_tokens.jsonl --vocab lm_shards -o clf_shards --split-col is_valid --force -q
fi
if todo lm; then
  "$B/lm-train" lm_shards -o lm "${MODEL[@]}" --bs 128 --bptt 72 --epochs "$LM_EPOCHS" --lr 1e-2 \
    --drop-mult 0.3 "${COMMON[@]}" --metrics lm.jsonl --force
fi

# One classifier per setting, trained side by side (one thread each).
runs=(plain)
[[ $REWEIGH == 1 ]] && runs+=(reweigh)
for a in $ALPHAS; do runs+=("adv$a"); done
pids=()
for r in "${runs[@]}"; do
  trained "clf_$r" && continue
  extra=()
  if [[ -d clf_$r && $FORCE != 1 ]]; then  # interrupted earlier: continue it
    "$B/clf-train" clf_shards -o "clf_$r" --resume "${COMMON[@]}" --metrics "clf_$r.resumed.jsonl" -q &
    pids+=($!)
    continue
  fi
  [[ $r == reweigh ]] && extra=(--reweigh sex)
  [[ $r == adv* ]] && extra=(--adversary sex --adversary-weight "${r#adv}" --adversary-lr "$ADV_LR" --adversary-mode "$ADV_MODE")
  "$B/clf-train" clf_shards --encoder lm -o "clf_$r" --bs 64 --unfreeze "$UNFREEZE" --drop-mult 0.5 \
    "${COMMON[@]}" "${extra[@]}" --metrics "clf_$r.jsonl" --force -q &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for r in "${runs[@]}"; do trained "clf_$r" || { echo "run.sh: clf_$r did not finish" >&2; exit 2; }; done

for r in "${runs[@]}"; do
  if todo "audit_$r.json"; then
    "$B/clf-train" predict --ckpt "clf_$r" clf_shards --split valid -o "preds_$r.jsonl" --force --device cpu
    "$B/bias-audit" "preds_$r.jsonl" --y-true label --y-pred pred --favorable '>50K' \
      --protected sex --privileged Male --json-out "audit_$r.json" --force -q > "audit_$r.txt" || true
  fi
  todo "probe_$r.json" && "$B/bias-audit" probe --ckpt "clf_$r" --shards clf_shards --protected sex \
    --split valid --json-out "probe_$r.json" --force "${PROBE[@]}" > /dev/null
done
todo probe_lm.json && "$B/bias-audit" probe --ckpt lm --shards clf_shards --protected sex \
  --split valid --json-out probe_lm.json --force "${PROBE[@]}" > /dev/null

# The table.
n_train=$(jq -r '.splits.train.docs' clf_shards/manifest.json 2>/dev/null || echo '?')
echo "UCI Adult as text: classifier on $(jq '.rows' audit_plain.json) test persons ($([[ $EVERY == 1 ]] && echo all || echo "every ${EVERY}th")), privileged Male, favorable >50K"
printf '%-28s %9s %9s %9s %9s %9s %9s\n' run accuracy EOD AOD DI SPD 'probe acc'
for r in "${runs[@]}"; do
  a=audit_$r.json
  acc=$(jq '.aif360.per_group.overall.accuracy' "$a")
  eod=$(jq '.aif360.equal_opportunity_difference' "$a")
  aod=$(jq '.aif360.average_odds_difference' "$a")
  di=$(jq '.aif360.disparate_impact' "$a")
  spd=$(jq '.aif360.statistical_parity_difference' "$a")
  pa=$(jq '.accuracy' "probe_$r.json")
  name=$r
  [[ $r == adv* ]] && name="adversary alpha ${r#adv} ($ADV_MODE)"
  [[ $r == reweigh ]] && name="reweighing (Kamiran-Calders)"
  printf '%-28s %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f\n' "$name" "$acc" "$eod" "$aod" "$di" "$spd" "$pa"
done
printf 'probe on the language model: accuracy %.4f, AUC %.4f; majority baseline %.4f (always %s)\n' \
  "$(jq '.accuracy' probe_lm.json)" "$(jq '.auc' probe_lm.json)" \
  "$(jq '.majority_accuracy' probe_lm.json)" "$(jq -r '.majority_group' probe_lm.json)"
echo "AIF360 AdversarialDebiasing demo (logistic model on the tabular features): accuracy 0.805 → 0.792, EOD −0.471 → −0.091"
echo "(EOD equal opportunity difference, AOD average odds difference, DI disparate impact, SPD statistical parity difference: unprivileged − privileged)"
