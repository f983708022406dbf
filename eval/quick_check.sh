#!/bin/bash
# The cheapest points of a shipping rule first (eval/results/reader-v18-rule.md): a candidate reader on the
# README judge docs13 and on the seed gold file, end to end with its own score and no threshold, each compared
# question by question with the base reader's report (paired bootstrap). A seed answerable question lost here is
# lost for good: the calibration decides whether to answer, never which span.
#
#   bash eval/quick_check.sh MODEL NAME JUDGE
#   bash eval/quick_check.sh ~/qa-runs/v18/model v18 ~/qa-runs/judge13
#
# Writes JUDGE/eval/NAME-docs13.jsonl (the report eval/judge_reader.sh reuses) and NAME-seed-nothr.jsonl; the
# base's reports JUDGE/eval/base-docs13.jsonl and base-seed-nothr.jsonl are made from BASE (default
# ~/qa-runs/v6-base) when missing. About 1 minute for each reader on 2 cores.
set -euo pipefail
{  # bash reads this block whole before it runs: editing the file cannot break a run under way
MODEL=${1:?candidate model folder}; NAME=${2:?name}; J=${3:?judge folder}; BASE=${4:-$HOME/qa-runs/v6-base}
cd "$(dirname "$0")/.."
mkdir -p "$J/eval"
source eval/answer_gold.sh
for who in "base:$BASE" "$NAME:$MODEL"; do
  n=${who%%:*}; r=${who#*:}
  answer_gold eval/docs13-gold.jsonl eval/docs13 "$J/idx/docs13" "$J/eval/$n-docs13.jsonl" "$r"
  answer_gold eval/gold.jsonl seeds "$J/idx/seeds" "$J/eval/$n-seed-nothr.jsonl" "$r"
done
echo "== docs13 (point 1: F1 above the base with the interval above zero): base -> $NAME"
python eval/compare_reports.py "$J/eval/base-docs13.jsonl" "$J/eval/$NAME-docs13.jsonl"
echo "== seed, no threshold: base -> $NAME"
python eval/compare_reports.py "$J/eval/base-seed-nothr.jsonl" "$J/eval/$NAME-seed-nothr.jsonl"
exit
}
