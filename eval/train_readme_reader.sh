#!/bin/bash
# A reader fine-tuned from v6 on SQuAD plus README gold files (eval/results/reader-candidates.md, "v12");
# resumes a stopped run.
#
#   bash eval/train_readme_reader.sh [--written WEIGHT[@N]] [--readme-weight W] [--squad-weight W] [--steps S]
#                                    [--titled SHARE] [--base DIR] [--learning-rate LR] [--teacher DIR]
#                                    NAME SEED GOLD_NAME... [-- SHARED_DATA [RUNS]]
#   bash eval/train_readme_reader.sh v12 37 docs docs2 docs3 docs4 docs7 docs8 docs10 docs11 docs12
#   bash eval/train_readme_reader.sh --written 2@32 --readme-weight 0 v16 44     # no README questions
#
# --written WEIGHT adds the unanswerable questions written for SQuAD train paragraphs (the batches
# eval/written-unanswerable/wu1.jsonl .. wuN.jsonl, N 8 unless WEIGHT@N, joined with their paragraphs into
# RUNS/NAME/written-unanswerable.json by eval/written_unanswerable.py) at that weight. --readme-weight W sets the
# weight of the README questions (6 unless given); 0 leaves them out, and then no GOLD_NAME is needed.
# --squad-weight W the share of SQuAD train sampled (0.3 unless given; up to 1). --steps S trains S steps of 32
# windows instead of 800 (at most one epoch of the mix: v18's mix is 2,549 steps). --titled SHARE trains on a copy
# of SQuAD train with its article's title as the first line of that share of its paragraphs (eval/titled_squad.py,
# RUNS/NAME/squad11-train-titled.json). --base DIR starts from that reader instead of v6 (RUNS/v6-base);
# --learning-rate LR sets the peak learning rate (3e-5 unless given). --teacher DIR distils the windows that hold
# their answer from that reader (`--distill-answers-only`, distill weight 0.9; "no answer" windows learn from their
# label alone): with the base as teacher it is meant to keep the base's answers while the run teaches abstention
# (v22 kept them only in part: eval/results/reader-v22-rule.md).
#
# First collects v6's records of each GOLD_NAME (`fit_calibration.py collect-gold`, RUNS/caldocs; a file done
# is skipped, about 20 s each), which place its questions in their retrieved passages (eval/readme_train.py);
# writes RUNS/NAME/readme-train.json and the model in RUNS/NAME/model; 800 steps of 32 windows, about 55-65
# min on 2 CPU cores (4.1 s a step). v6 is copied to RUNS/v6-base from qa/models/reader (refused if that is
# another reader).
# Only the README gold files written as training data (TRAINABLE below: docs, docs2 to docs4, docs7, docs8, docs10
# to docs12, docs14, docs15) are accepted as GOLD_NAMEs; every other eval/NAME-gold.jsonl is a judge (eval/README.md)
# and is refused, so a new judge is held out without an edit here.
set -euo pipefail
{  # bash reads this block whole before it runs: editing the file cannot break a run under way
WRITTEN=""
BATCHES=8
README_WEIGHT=6
SQUAD_WEIGHT=0.3
STEPS=800
TITLED=""
BASE=""
LR=3e-5
TEACHER=""
while [ $# -gt 0 ]; do  # the options, in any order, before NAME
  case "$1" in
    --written) WRITTEN=${2:?weight of the written unanswerable questions}; shift 2
               case "$WRITTEN" in *@*) BATCHES=${WRITTEN#*@}; WRITTEN=${WRITTEN%@*};; esac;;
    --readme-weight) README_WEIGHT=${2:?weight of the README questions}; shift 2;;
    --squad-weight) SQUAD_WEIGHT=${2:?share of SQuAD train}; shift 2;;
    --steps) STEPS=${2:?number of steps}; shift 2;;
    --titled) TITLED=${2:?share of SQuAD paragraphs titled}; shift 2;;
    --base) BASE=${2:?base reader folder}; shift 2;;
    --learning-rate) LR=${2:?peak learning rate}; shift 2;;
    --teacher) TEACHER=${2:?teacher reader folder}; shift 2;;
    --*) echo "unknown option $1 (--written, --readme-weight, --squad-weight, --steps, --titled, --base, --learning-rate, --teacher)" >&2
        exit 2;;
    *) break;;
  esac
done
case "$STEPS" in ""|*[!0-9]*|0) echo "--steps needs a positive whole number, got '$STEPS'" >&2; exit 2;; esac
share_or_exit() {  # OPTION VALUE: VALUE must be a share above 0, at most 1
  awk -v w="$2" 'BEGIN { exit !(w ~ /^[0-9]*\.?[0-9]+$/ && w + 0 > 0 && w + 0 <= 1) }' ||
    { echo "$1 needs a share above 0, at most 1, got '$2'" >&2; exit 2; }
}
share_or_exit --squad-weight "$SQUAD_WEIGHT"
[ -z "$TITLED" ] || share_or_exit --titled "$TITLED"
awk -v w="$LR" 'BEGIN { exit !(w ~ /^[0-9]*\.?[0-9]+([eE]-?[0-9]+)?$/ && w + 0 > 0) }' ||
  { echo "--learning-rate needs a positive number, got '$LR'" >&2; exit 2; }
if [ -n "$BASE" ] && [ ! -f "$BASE/model.safetensors" ]; then
  echo "--base $BASE holds no reader (no model.safetensors)" >&2; exit 2
fi
if [ -n "$TEACHER" ] && [ ! -f "$TEACHER/model.safetensors" ]; then
  echo "--teacher $TEACHER holds no reader (no model.safetensors)" >&2; exit 2
fi
NAME=${1:?run name}; SEED=${2:?seed}; shift 2
TRAIN=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do TRAIN+=("$1"); shift; done
[ "${1:-}" == "--" ] && shift
if [ "$README_WEIGHT" == "0" ]; then
  [ ${#TRAIN[@]} -eq 0 ] || { echo "--readme-weight 0 leaves the README questions out: name no gold file" >&2; exit 2; }
else
  [ ${#TRAIN[@]} -gt 0 ] || { echo "name at least one README gold file to train on" >&2; exit 2; }
fi
cd "$(dirname "$0")/.."
TRAINABLE=" docs docs2 docs3 docs4 docs7 docs8 docs10 docs11 docs12 docs14 docs15 "
for g in "${TRAIN[@]+"${TRAIN[@]}"}"; do
  [ -f "eval/$g-gold.jsonl" ] || { echo "no gold file eval/$g-gold.jsonl" >&2; exit 2; }
  case "$TRAINABLE" in *" $g "*) ;; *) echo "$g is held out (a judge, eval/README.md): not training data" >&2; exit 2;; esac
done
D=${1:-../shared/data}/squad
R=${2:-$HOME/qa-runs}
V6_SHA256=3463eb67cf1303f6   # the start of v6's model.safetensors sha256
if [ ! -d "$R/v6-base" ]; then
  if [ "$(sha256sum qa/models/reader/model.safetensors | cut -c1-16)" != "$V6_SHA256" ]; then
    echo "qa/models/reader is not v6: put v6 in $R/v6-base (git show 50d78da:qa/models/reader/...)" >&2; exit 2
  fi
  cp -r qa/models/reader "$R/v6-base"
fi
for g in "${TRAIN[@]+"${TRAIN[@]}"}"; do
  python eval/fit_calibration.py collect-gold "eval/$g-gold.jsonl" --docs "eval/$g" --reader "$R/v6-base" \
    --out "$R/caldocs/$g.jsonl" --work "$R/caldocs/idx"
done
EXTRA=()
if [ "$README_WEIGHT" != "0" ]; then
  python eval/readme_train.py "$R/$NAME/readme-train.json" "${TRAIN[@]}" --records "$R/caldocs" --indexes "$R/caldocs/idx"
  EXTRA=("$R/$NAME/readme-train.json:$README_WEIGHT")
fi
if [ -n "$WRITTEN" ]; then
  WU=()
  for i in $(seq 1 "$BATCHES"); do WU+=("eval/written-unanswerable/wu$i.jsonl"); done
  python eval/written_unanswerable.py build "$D/squad11-train.json" "$R/$NAME/written-unanswerable.json" "${WU[@]}"
  EXTRA+=("$R/$NAME/written-unanswerable.json:$WRITTEN")
fi
SQUAD="$D/squad11-train.json"
if [ -n "$TITLED" ]; then
  SQUAD="$R/$NAME/squad11-train-titled.json"
  python eval/titled_squad.py "$D/squad11-train.json" "$SQUAD" --share "$TITLED"
fi
DISTIL=()
[ -z "$TEACHER" ] || DISTIL=(--teacher "$TEACHER" --distill-answers-only --distill-weight 0.9)
HOLD=()
for a in Computational_complexity_theory European_Union_law Yuan_dynasty Warsaw Steam_engine Packet_switching \
         Immune_system Imperialism; do HOLD+=(--dev-article "$a"); done
exec qa train-reader "$SQUAD:$SQUAD_WEIGHT" "$D/squad20-dev-half-train.json" \
  "${EXTRA[@]+"${EXTRA[@]}"}" -o "$R/$NAME/model" "${HOLD[@]}" "${DISTIL[@]+"${DISTIL[@]}"}" \
  --paragraph-negatives 0.15 --retrieved-negatives 0.15 --base-model "${BASE:-$R/v6-base}" \
  --epochs 1 --max-steps "$STEPS" --learning-rate "$LR" --seed "$SEED" --save-every 100 --resume --log "$R/$NAME/train.log"
exit
}
