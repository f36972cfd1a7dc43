#!/usr/bin/env bash
# kill -9 at seeded random moments of numericalize, lm-train and clf-train; after every kill,
# every output must be the previous complete one, a complete new one, or absent, and every
# checkpoint that exists must load. Checkpoints left by a killed trainer are resumed
# (--resume) and must end bit-identical (model and optimizer files) to an uninterrupted run
# with the same seed on the CPU. Prints a markdown summary for benches/RESULTS.md.
#
# usage: benches/crash.sh [numericalize] [lm-train] [clf-train]     (default: all)
#   TRIALS   kills per tool (default 50)
#   SEED     seed of the kill moments (default 1)
# Needs target/release built (make build). Works in a temporary folder under /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
B=$PWD/target/release
TRIALS=${TRIALS:-50}
SEED=${SEED:-1}
for t in numericalize lm-train clf-train; do
  [ -x "$B/$t" ] || { echo "crash: build first (make build)" >&2; exit 2; }
done
W=$(mktemp -d /tmp/ulmfit-crash.XXXXXX)
trap 'rm -rf "$W"' EXIT
cd "$W"
sel=("$@")
on() { [ ${#sel[@]} -eq 0 ] && return 0; for s in "${sel[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
fail() { echo "FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }
FAILURES=0

# the i-th kill moment, stratified over [0, 1.1 x full run time): uniform within the i-th of
# TRIALS equal slices, from (SEED, tool, i), so every phase of the run gets its share of kills
moment() { awk -v s="$SEED" -v i="$2" -v t="$1" -v k="$3" -v n="$TRIALS" \
  'BEGIN { srand(s * 1000003 + k * 1009 + i); printf "%.3f", (i - 1 + rand()) / n * 1.1 * t }'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", b - a }'; }
# visible names other than the expected ones (hidden temporaries of killed runs are allowed)
stray() { ls | grep -vxF -f <(printf '%s\n' "$@") || true; }

# Run "$@" in the background, kill -9 it after $1 seconds.
kill_after() {
  local d=$1; shift
  "$@" >/dev/null 2>&1 &
  local pid=$!
  sleep "$d"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# a corpus: DOCS documents of 40 tokens from a 500-word vocabulary
corpus() {
  awk -v n="$1" -v s="$2" 'BEGIN { srand(s); for (i = 0; i < n; i++) { l = "xxbos";
    for (j = 0; j < 40; j++) l = l " w" int(rand() * rand() * 500); print l } }'
}

echo "# benches/crash.sh on $(date -u +%Y-%m-%d) — $(nproc) cores, TRIALS=$TRIALS, SEED=$SEED"
echo

if on numericalize; then
  corpus 250000 1 > big.txt          # 10M tokens: a run long enough to kill in every phase
  corpus 10 2 > small.txt
  num() { "$B/numericalize" "$1" --min-freq 1 --force -q -o out --metrics /dev/null; }
  num big.txt; cp out/manifest.json new.manifest
  full=$(for _ in 1 2 3; do t0=$(now); num big.txt; secs "$t0" "$(now)"; done | sort -g | sed -n 2p)   # median of 3
  num small.txt; cp out/manifest.json old.manifest
  old=0 new=0 absent=0
  for i in $(seq "$TRIALS"); do
    kill_after "$(moment "$full" "$i" 1)" "$B/numericalize" big.txt --min-freq 1 --force -q -o out --metrics /dev/null
    if [ ! -e out ]; then
      absent=$((absent + 1)); num small.txt; continue
    fi
    "$B/numericalize" verify out >/dev/null 2>verify.err || fail "numericalize trial $i: $(cat verify.err)"
    if cmp -s out/manifest.json old.manifest; then old=$((old + 1))
    elif cmp -s out/manifest.json new.manifest; then new=$((new + 1)); num small.txt
    else fail "numericalize trial $i: the manifest is neither the old nor the new one"; fi
    s=$(stray big.txt small.txt out old.manifest new.manifest verify.err)
    [ -z "$s" ] && true || fail "numericalize trial $i left: $s"
  done
  num small.txt
  left=$(ls -A | grep '^\.' | tr '\n' ' ' || true)
  echo "## numericalize: $TRIALS kills during a ${full}s run (10M tokens)"
  echo
  echo "| outcome after kill -9 | trials |"
  echo "|---|---:|"
  echo "| previous shard set, verified | $old |"
  echo "| new shard set, verified | $new |"
  echo "| absent | $absent |"
  echo "| damaged / anything else | $((TRIALS - old - new - absent)) |"
  echo
  echo "Hidden temporaries left after the next successful run: ${left:-none}."
  [ -z "$left" ] || fail "numericalize: temporaries of killed runs were not cleaned up: $left"
  echo
fi

if on lm-train; then
  corpus 3000 3 > lm.txt
  "$B/numericalize" lm.txt --valid-pct 0.1 --seed 1 --min-freq 1 -q -o shards --metrics /dev/null
  TINY=(--emb-sz 16 --n-hid 32 --n-layers 2 --bs 8 --bptt 16 --device cpu --threads 1 --lr 1e-2 -q --metrics /dev/null)
  STEPS=300 EVERY=20
  lm() { "$B/lm-train" shards "$@" "${TINY[@]}"; }
  lm -o old --steps 5 --seed 1                               # the previous output
  lm -o ref --steps $STEPS --save-every $EVERY --seed 7
  full=$(for _ in 1 2 3; do rm -rf t; t0=$(now); lm -o t --steps $STEPS --save-every $EVERY --seed 7; secs "$t0" "$(now)"; done | sort -g | sed -n 2p)
  rm -rf t
  old=0 mid=0 final=0 absent=0 resumed=0 identical=0
  for i in $(seq "$TRIALS"); do
    rm -rf out; cp -r old out
    kill_after "$(moment "$full" "$i" 2)" "$B/lm-train" shards -o out --force --steps $STEPS --save-every $EVERY --seed 7 "${TINY[@]}"
    if [ ! -e out ]; then absent=$((absent + 1)); continue; fi
    "$B/lm-train" generate --ckpt out --prompt xxbos --n-words 3 --device cpu --threads 1 >/dev/null 2>gen.err \
      || { fail "lm-train trial $i: the checkpoint does not load: $(cat gen.err)"; continue; }
    if cmp -s out/model.safetensors old/model.safetensors; then old=$((old + 1)); continue; fi
    step=$(grep -m1 '"step"' out/train_state.json | tr -dc 0-9)
    if [ "$step" -eq $STEPS ]; then final=$((final + 1))
    elif [ $((step % EVERY)) -eq 0 ]; then mid=$((mid + 1))
    else fail "lm-train trial $i: a checkpoint at step $step, which was never saved"; fi
    # resume what the kill left, to the end: bit-identical to the uninterrupted run
    "$B/lm-train" shards -o out --resume --device cpu --threads 1 -q --metrics /dev/null 2>resume.err \
      || { fail "lm-train trial $i: --resume failed: $(cat resume.err)"; continue; }
    resumed=$((resumed + 1))
    if cmp -s out/model.safetensors ref/model.safetensors && cmp -s out/optimizer.safetensors ref/optimizer.safetensors; then
      identical=$((identical + 1))
    else fail "lm-train trial $i: resumed from step $step, the weights differ from the uninterrupted run"; fi
  done
  echo "## lm-train: $TRIALS kills during a ${full}s run ($STEPS steps, a checkpoint every $EVERY, --force over a previous checkpoint)"
  echo
  echo "| outcome after kill -9 | trials |"
  echo "|---|---:|"
  echo "| previous checkpoint (loads) | $old |"
  echo "| a checkpoint of this run at a save point (loads) | $mid |"
  echo "| the final checkpoint (loads) | $final |"
  echo "| absent | $absent |"
  echo "| damaged / does not load / anything else | $((TRIALS - old - mid - final - absent)) |"
  echo
  echo "Resumed with --resume to the end: $resumed; bit-identical (model.safetensors and optimizer.safetensors) to the uninterrupted run: $identical."
  echo
fi

if on clf-train; then
  [ -d shards ] || { corpus 3000 3 > lm.txt; "$B/numericalize" lm.txt --valid-pct 0.1 --seed 1 --min-freq 1 -q -o shards --metrics /dev/null; }
  # a labelled shard set with the same vocab: label = whether the doc has more w1 than w2
  awk '{ a = 0; b = 0; s = "{\"tokens\":[";
         for (i = 1; i <= NF; i++) { a += ($i == "w1"); b += ($i == "w2"); s = s (i > 1 ? "," : "") "\"" $i "\"" }
         print s "],\"label\":\"" (a > b ? "yes" : "no") "\"}" }' lm.txt > clf.jsonl
  "$B/numericalize" clf.jsonl --vocab shards --valid-pct 0.2 --seed 1 -q -o cshards --metrics /dev/null
  [ -d enc ] || "$B/lm-train" shards -o enc --steps 20 --emb-sz 16 --n-hid 32 --n-layers 2 --bs 8 --bptt 16 --device cpu --threads 1 -q --metrics /dev/null
  CT=(--bs 16 --bptt 16 --max-len 32 --device cpu --threads 1 --seed 7 -q --metrics /dev/null --unfreeze '1:2e-2,2:1e-2,all:5e-3' --save-every 10)
  t0=$(now); "$B/clf-train" cshards --encoder enc -o cref "${CT[@]}"; full=$(secs "$t0" "$(now)")
  CTRIALS=${CLF_TRIALS:-$TRIALS}
  absent=0 loads=0 resumed=0 identical=0
  for i in $(seq "$CTRIALS"); do
    rm -rf cout
    kill_after "$(moment "$full" "$i" 3)" "$B/clf-train" cshards --encoder enc -o cout "${CT[@]}"
    if [ ! -e cout ]; then absent=$((absent + 1)); continue; fi
    "$B/clf-train" predict --ckpt cout cshards --device cpu --threads 1 -o /dev/null 2>pred.err \
      || { fail "clf-train trial $i: the checkpoint does not load: $(cat pred.err)"; continue; }
    loads=$((loads + 1))
    "$B/clf-train" cshards -o cout --resume --device cpu --threads 1 -q --metrics /dev/null 2>resume.err \
      || { fail "clf-train trial $i: --resume failed: $(cat resume.err)"; continue; }
    resumed=$((resumed + 1))
    if cmp -s cout/model.safetensors cref/model.safetensors && cmp -s cout/optimizer.safetensors cref/optimizer.safetensors; then
      identical=$((identical + 1))
    else fail "clf-train trial $i: the resumed weights differ from the uninterrupted run"; fi
  done
  echo "## clf-train: $CTRIALS kills during a ${full}s run (3 unfreezing phases, a checkpoint every 10 steps)"
  echo
  echo "| outcome after kill -9 | trials |"
  echo "|---|---:|"
  echo "| no checkpoint yet (absent) | $absent |"
  echo "| a checkpoint that loads (predict) | $loads |"
  echo "| damaged / anything else | $((CTRIALS - absent - loads)) |"
  echo
  echo "Resumed with --resume to the end: $resumed; bit-identical (model.safetensors and optimizer.safetensors) to the uninterrupted run: $identical."
  echo
fi

echo "Failures: $FAILURES"
[ "$FAILURES" -eq 0 ]
