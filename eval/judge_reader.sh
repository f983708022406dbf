#!/bin/bash
# Judge a reader candidate against a base reader: the figures of a shipping rule such as
# eval/results/reader-v12-rule.md, with every report kept in OUT (outside the work tree).
#
#   bash eval/judge_reader.sh CANDIDATE NAME BASE OUT [THREADS] -- GOLD_NAME...
#
# THREADS limits torch's threads (beside a training run); the default is every core.
#
# 1. the gold-paragraph figures on the tune articles (`reader_figures.py --steps gold-tune`) of both readers,
#    compared question by question (paired bootstrap) on the v1.1 tune questions;
# 2. for each README gold file eval/GOLD_NAME-gold.jsonl: its folder indexed once, each reader's answers end
#    to end (hybrid, top-k 5) with its own score and no threshold, and the paired comparison of the two.
# The base's figures are computed once (kept in OUT/figures/base, OUT/eval/base-*.jsonl) and reused.
set -euo pipefail
{  # bash reads this block whole before it runs: editing the file cannot break a run under way
R=${1:?candidate reader folder}; NAME=${2:?candidate name}; BASE=${3:?base reader folder}; OUT=${4:?out folder}
shift 4
T=()
if [ "${1:-}" != "--" ] && [ -n "${1:-}" ]; then T=(--threads "$1"); export OMP_NUM_THREADS=$1; shift; fi
[ "${1:-}" == "--" ] && shift
cd "$(dirname "$0")/.."
mkdir -p "$OUT/eval" "$OUT/idx"
for who in "base:$BASE" "$NAME:$R"; do
  n=${who%%:*}; r=${who#*:}
  python eval/reader_figures.py --reader "$r" --name "$n" --out "$OUT/figures" --steps gold-tune --skip-done "${T[@]}"
done
python eval/compare_reports.py "$OUT/figures/base/gold-v11-tune.jsonl" "$OUT/figures/$NAME/gold-v11-tune.jsonl"
source eval/answer_gold.sh
for g in "$@"; do
  for who in "base:$BASE" "$NAME:$R"; do
    n=${who%%:*}; r=${who#*:}
    answer_gold "eval/$g-gold.jsonl" "eval/$g" "$OUT/idx/$g" "$OUT/eval/$n-$g.jsonl" "$r"
  done
  echo "== $g: base -> $NAME"
  python eval/compare_reports.py "$OUT/eval/base-$g.jsonl" "$OUT/eval/$NAME-$g.jsonl"
done
exit
}
