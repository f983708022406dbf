#!/bin/bash
# A candidate reader with its refitted calibration on the seed gold file, against the base reader: point 4's
# seed check of the shipping rules (eval/results/reader-v13-rule.md).
#
#   bash eval/seed_check.sh MODEL CALIBRATION NAME JUDGE [BASE]
#   bash eval/seed_check.sh ~/qa-runs/v13/model ~/qa-runs/cal/v13/calibration.json v13 ~/qa-runs/judge13
#
# Makes the reader folder JUDGE/ship-NAME (weights, tokenizer, calibration, and decoding.json where MODEL has
# one), indexes seeds/ once in JUDGE/idx/seeds, answers eval/gold.jsonl end to end with the calibration's
# threshold, and compares with the base's report JUDGE/eval/base-seed.jsonl (made from BASE, default
# ~/qa-runs/v6-base, when missing): the last line lists the answerable questions the base gets right
# (F1 >= 0.5) and the candidate does not.
set -euo pipefail
{  # bash reads this block whole before it runs: editing the file cannot break a run under way
MODEL=${1:?candidate model folder}; CAL=${2:?its calibration.json}; NAME=${3:?name}; J=${4:?judge folder}
BASE=${5:-$HOME/qa-runs/v6-base}
cd "$(dirname "$0")/.."
S="$J/ship-$NAME"
rm -rf "$S" && mkdir -p "$S" "$J/eval"
cp "$MODEL"/{model.safetensors,config.json,tokenizer.json,tokenizer_config.json} "$S/"
cp "$CAL" "$S/calibration.json"
# the decoder the candidate is judged with (qa.spans.reader_span_breaks), where its folder names one
if [ -f "$MODEL/decoding.json" ]; then cp "$MODEL/decoding.json" "$S/"; fi
[ -f "$J/idx/seeds/index.sqlite" ] || qa index seeds -i "$J/idx/seeds"
[ -f "$J/eval/base-seed.jsonl" ] || qa eval eval/gold.jsonl -i "$J/idx/seeds" --reader "$BASE" \
  --report "$J/eval/base-seed.jsonl" > "$J/eval/base-seed.txt"
qa eval eval/gold.jsonl -i "$J/idx/seeds" --reader "$S" --report "$J/eval/$NAME-seed.jsonl" > "$J/eval/$NAME-seed.txt"
sed -n 2,8p "$J/eval/$NAME-seed.txt"
python eval/compare_reports.py "$J/eval/base-seed.jsonl" "$J/eval/$NAME-seed.jsonl"
exit
}
