#!/bin/bash
# Reader v12 (eval/results/reader-v12-rule.md): v6 fine-tuned on SQuAD with the README training questions.
#   bash eval/train_reader_v12.sh [SHARED_DATA [RUNS]]     (resumes where a stopped run left off)
# Needs the collect-gold records of v6 for each README file (eval/readme_train.py's docstring); 800 steps of
# 32 windows, about 55 min on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
D=${1:-../shared/data}/squad
R=${2:-$HOME/qa-runs}
TRAIN="docs docs2 docs3 docs4 docs7 docs8 docs10 docs11 docs12"   # never docs5, docs6, docs9: the judges
python eval/readme_train.py "$R/v12/readme-train.json" $TRAIN --records "$R/caldocs" --indexes "$R/caldocs/idx"
[ -d "$R/v6-base" ] || cp -r qa/models/reader "$R/v6-base"       # v6, before anything replaces it
HOLD=""
for a in Computational_complexity_theory European_Union_law Yuan_dynasty Warsaw Steam_engine Packet_switching \
         Immune_system Imperialism; do HOLD="$HOLD --dev-article $a"; done
exec qa train-reader "$D/squad11-train.json:0.3" "$D/squad20-dev-half-train.json" "$R/v12/readme-train.json:6" \
  -o "$R/v12/model" $HOLD --paragraph-negatives 0.15 --retrieved-negatives 0.15 --base-model "$R/v6-base" \
  --epochs 1 --max-steps 800 --learning-rate 3e-5 --seed 37 --save-every 100 --resume --log "$R/v12/train.log"
