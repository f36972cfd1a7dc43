#!/usr/bin/env bash
# UCI Adult as text, for the bias demonstration: each person becomes a sentence built from every
# column except `sex`, which is kept aside as the protected attribute (relationship = Husband /
# Wife and occupation still leak it, as in the real world). Writes CSV to stdout:
#   text,label,sex,race,is_valid        (label: >50K or <=50K; is_valid: True for adult.test)
#
# usage: examples/adult/adult_to_text.sh [DATA_DIR] > adult_text.csv
#   DATA_DIR defaults to ../shared/data/uci-adult (adult.data = train, adult.test = valid)
set -euo pipefail
D=${1:-$(dirname "$0")/../../../shared/data/uci-adult}
echo "text,label,sex,race,is_valid"
convert() {  # file is_valid
  awk -F', *' -v valid="$2" '
    NF < 15 || /^\|/ { next }                  # blank lines and the test file header
    {
      for (i = 1; i <= NF; i++) gsub(/^ +| +$/, "", $i)
      label = $15; sub(/\.$/, "", label)       # adult.test labels end with "."
      text = sprintf("age %s. works %s. education %s (%s years). marital status %s. occupation %s. relationship %s. race %s. capital gain %s, capital loss %s. %s hours per week. from %s.",
                     $1, $2, $4, $5, $6, $7, $8, $9, $11, $12, $13, $14)
      gsub(/"/, "\"\"", text)
      printf "\"%s\",%s,%s,%s,%s\n", text, label, $10, $9, valid
    }' "$1"
}
convert "$D/adult.data" False
convert "$D/adult.test" True
