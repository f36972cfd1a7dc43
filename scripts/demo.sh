#!/usr/bin/env bash
# The main job on a built-in default: the fast.ai IMDb sample through the whole pipeline.
# Uses ../shared/data/imdb_sample/texts.csv when present, else downloads the public
# IMDB_SAMPLE archive once (checked against its SHA-256) into the per-user cache.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
OUT=${OUT:-out/demo}
CACHE=${ULMFIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ulmfit-rs}
TEXTS_SHA256=91240460ea1226e2ebe64689addc2a3d7a0fd233ee42a589aec222ea973ac242

texts=../shared/data/imdb_sample/texts.csv
if [ ! -f "$texts" ]; then
  texts=$CACHE/imdb_sample/texts.csv
  if [ ! -f "$texts" ]; then
    echo "demo: ../shared/data is absent; downloading fast.ai IMDB_SAMPLE" >&2
    mkdir -p "$CACHE"
    tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
    curl -fsSL https://s3.amazonaws.com/fast-ai-sample/imdb_sample.tgz -o "$tmp/imdb_sample.tgz"
    tar -xzf "$tmp/imdb_sample.tgz" -C "$tmp"
    echo "$TEXTS_SHA256  $tmp/imdb_sample/texts.csv" | sha256sum -c --quiet -
    rm -rf "$CACHE/imdb_sample" && mv "$tmp/imdb_sample" "$CACHE/imdb_sample" && rm -rf "$tmp"
  fi
fi

mkdir -p "$OUT"
# A small AWD-LSTM so the whole lesson runs in a few minutes on a laptop CPU.
MODEL=(--emb-sz 64 --n-hid 128 --n-layers 2 --bs 32 --bptt 64)

echo "== 1. tokenize: $texts → $OUT/tokens.jsonl"
$BIN/tokenize "$texts" --keep label --keep is_valid -o "$OUT/tokens.jsonl" --force --metrics "$OUT/tokenize.metrics.jsonl"
# A group for the audit at the end: does the review talk about women?
awk '{ g = ($0 ~ /"(she|her|hers|herself|woman|women|actress|actresses|girl|girls)"/) ? "yes" : "no"
       sub(/}$/, ",\"mentions_women\":\"" g "\"}"); print }' "$OUT/tokens.jsonl" >"$OUT/tokens.groups.jsonl"
head -c 300 "$OUT/tokens.jsonl"; echo " ..."

echo "== 2. numericalize: LM shards (all 1000 reviews, 10% held out) and classifier shards (is_valid) with the LM's vocab"
$BIN/numericalize "$OUT/tokens.groups.jsonl" -o "$OUT/lm_shards" --valid-pct 0.1 --seed 42 --force --metrics "$OUT/numericalize.metrics.jsonl"
$BIN/numericalize "$OUT/tokens.groups.jsonl" --vocab "$OUT/lm_shards" -o "$OUT/clf_shards" --split-col is_valid --force -q >/dev/null
$BIN/numericalize verify "$OUT/clf_shards"
$BIN/numericalize pack "$OUT/lm_shards" -o "$OUT/lm_shards.tar.zst" --force

echo "== 3. lr-find: the LR range test on the language model → $OUT/lr_find.png"
$BIN/lr-find "$OUT/lm_shards" "${MODEL[@]}" --drop-mult 0.3 --seed 42 --suggest steep --plot "$OUT/lr_find.png" --force >"$OUT/lr_find.jsonl"
LR=$(grep '"type":"lr_find_summary"' "$OUT/lr_find.jsonl" | sed -E 's/.*"type":"lr_find_summary","method":"[a-z]+","lr":([-0-9.eE+]+),.*/\1/')
echo "   suggested (steep) lr: $LR"

echo "== 4. lm-train: fine-tune the language model on the reviews (4 epochs, one-cycle at the suggested lr)"
$BIN/lm-train "$OUT/lm_shards" -o "$OUT/lm" "${MODEL[@]}" --drop-mult 0.3 --epochs 4 --lr "$LR" --seed 42 \
  --force --metrics "$OUT/lm.metrics.jsonl"
grep '"type":"lm_epoch"' "$OUT/lm.metrics.jsonl" | tail -n 1
$BIN/lm-train generate --ckpt "$OUT/lm" --prompt "I liked this movie because" --n-words 30 --seed 1 --tidy

echo "== 5. clf-train: sentiment head with gradual unfreezing and discriminative lrs"
$BIN/clf-train "$OUT/clf_shards" --encoder "$OUT/lm" -o "$OUT/clf" --bs 32 --bptt 64 --seed 42 \
  --unfreeze '1:2e-2,2:1e-2,3:5e-3,all:1e-3x4' --force --metrics "$OUT/clf.metrics.jsonl"
grep '"type":"clf_epoch"' "$OUT/clf.metrics.jsonl" | tail -n 1
$BIN/plot "$OUT/lm.metrics.jsonl" -o "$OUT/lm_curves.png" --force -q
$BIN/plot "$OUT/clf.metrics.jsonl" -y accuracy -y valid_loss -o "$OUT/clf_curves.png" --force -q
echo "   training curves: $OUT/lm_curves.png, $OUT/clf_curves.png (plot)"

echo "== 6. predict → bias-audit: is the classifier as good on reviews that mention women?"
$BIN/clf-train predict --ckpt "$OUT/clf" "$OUT/clf_shards" --split valid -o "$OUT/predictions.jsonl" --force
set +e
$BIN/bias-audit "$OUT/predictions.jsonl" --y-true label --y-pred pred --favorable positive \
  --protected mentions_women --privileged no --bootstrap 200 --seed 1 \
  --fail-if 'abs(equal_opportunity_difference)>0.2' --json-out "$OUT/audit.json" --plot "$OUT/audit.png" --force
audit=$?
set -e
case $audit in
  0) echo "   audit: every gate holds" ;;
  1) echo "   audit: a gate was violated (exit 1), as a CI step would report it" ;;
  *) exit "$audit" ;;
esac
echo "== done: outputs in $OUT (tokens, shards, lr_find.png, lm/, clf/, *_curves.png, predictions.jsonl, audit.json, audit.png)"
