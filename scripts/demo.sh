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
echo "== 1. tokenize: $texts → $OUT/tokens.jsonl"
$BIN/tokenize "$texts" --keep label --keep is_valid -o "$OUT/tokens.jsonl" --force --metrics "$OUT/tokenize.metrics.jsonl"
head -c 300 "$OUT/tokens.jsonl"; echo " ..."

echo "== 2. numericalize: → $OUT/shards (vocab as fastai: max 60000, min_freq 3; split from is_valid)"
$BIN/numericalize "$OUT/tokens.jsonl" -o "$OUT/shards" --split-col is_valid --force --metrics "$OUT/numericalize.metrics.jsonl"
$BIN/numericalize verify "$OUT/shards"
$BIN/numericalize pack "$OUT/shards" -o "$OUT/shards.tar.zst" --force

echo "== summary (metrics JSON lines)"
cat "$OUT/tokenize.metrics.jsonl" "$OUT/numericalize.metrics.jsonl"
