#!/bin/bash
# Fit a reader's calibration and measure it: the commands of the README ("How it was fitted") for any reader
# folder, with every record and report kept in WORK (outside the work tree, for example ~/qa-runs/cal/NAME).
#
#   bash eval/calibrate_reader.sh READER WORK "READER NAME" [THREADS] [DATA]
#
# 1. collects the tune records (the four tune articles of eval/reader_split.json: their v2.0 questions with
#    their article indexed, their v1.1 questions with and without it), then fits WORK/calibration.json on them
#    (two tune articles held out to choose the threshold: 80 % of their questions about articles not indexed
#    abstained on, v5's rule), and prints the rank_penalty and candidate-policy tables (tune only);
# 2. collects the dev records (the four dev_v20 articles, v1.1 and v2.0) and the final records (six v1.1
#    articles used for nothing else), and reports both at the fitted threshold, and with the reader's own
#    score at 0.5.
# The reader folder is not changed: to ship, copy WORK/calibration.json next to its weights.
# `collect` appends to its records file and skips questions already asked, so a run cut off resumes where it
# stopped when started again with the same arguments.
set -euo pipefail
{  # bash reads this block whole before it runs: editing the file cannot break a run under way
READER=${1:?reader folder}
WORK=${2:?work folder}
NAME=${3:?reader name, recorded in the calibration}
THREADS=${4:-}
S=${5:-../shared/data/squad}
cd "$(dirname "$0")/.."
mkdir -p "$WORK"
T=()
if [ -n "$THREADS" ]; then T=(--threads "$THREADS"); fi
TUNE=(--ask Computational_complexity_theory --ask European_Union_law --ask Yuan_dynasty --ask Warsaw)
DEV=(--ask Steam_engine --ask Packet_switching --ask Immune_system --ask Imperialism)
FINAL=(--ask Super_Bowl_50 --ask Nikola_Tesla --ask Teacher --ask Southern_California
       --ask "Sky_(United_Kingdom)" --ask "Victoria_(Australia)")
FC=(python eval/fit_calibration.py)
# the indexes depend on the embedder only: readers calibrated side by side (WORK's parent) share them
C=(collect --reader "$READER" --work "$(dirname "$WORK")/indexes" "${T[@]}")

"${FC[@]}" "${C[@]}" "$S/squad20-dev-half-train.json" "${TUNE[@]}" --conditions inside --out "$WORK/tune20.jsonl"
"${FC[@]}" "${C[@]}" "$S/squad11-dev-train.json" "${TUNE[@]}" --conditions inside,outside --out "$WORK/tune11.jsonl"
"${FC[@]}" penalty "$WORK/tune20.jsonl" "$WORK/tune11.jsonl" | tee "$WORK/penalty.md"
"${FC[@]}" fit "$WORK/tune20.jsonl" "$WORK/tune11.jsonl" --hold-out 2 --outside-abstention 0.8 \
  --reader "$READER" --reader-name "$NAME" --out "$WORK/calibration.json" | tee "$WORK/fit.md"
"${FC[@]}" policy "$WORK/tune20.jsonl" "$WORK/tune11.jsonl" --calibration "$WORK/calibration.json" \
  | tee "$WORK/policy.md"
MIN=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['min_score'])" "$WORK/calibration.json")

"${FC[@]}" "${C[@]}" "$S/squad11-dev-train.json" "${DEV[@]}" --conditions inside,outside --out "$WORK/dev11.jsonl"
"${FC[@]}" "${C[@]}" "$S/squad20-dev-half-train.json" "${DEV[@]}" --conditions inside --out "$WORK/dev20.jsonl"
"${FC[@]}" "${C[@]}" "$S/squad11-dev-train.json" "${FINAL[@]}" --conditions inside,outside --out "$WORK/final11.jsonl"
"${FC[@]}" report "$WORK/dev11.jsonl" "$WORK/dev20.jsonl" --calibration "$WORK/calibration.json" \
  --threshold "$MIN" | tee "$WORK/report-dev.md"
"${FC[@]}" report "$WORK/dev11.jsonl" "$WORK/dev20.jsonl" --threshold 0.5 | tee "$WORK/report-dev-own.md"
"${FC[@]}" report "$WORK/final11.jsonl" --calibration "$WORK/calibration.json" --threshold "$MIN" \
  | tee "$WORK/report-final.md"
echo "calibration: $WORK/calibration.json (threshold $MIN)"
exit
}
