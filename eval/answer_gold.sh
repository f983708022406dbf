# Sourced by eval/judge_reader.sh and eval/quick_check.sh, so that both answer a judge file the same way and
# reuse each other's reports.
#
# answer_gold GOLD DOCS IDX REPORT READER: index the folder DOCS into IDX once, then answer the gold file GOLD end
# to end (hybrid, top-k 5) with READER's own score and no threshold into REPORT (JSONL; the printed table
# beside it, .txt), unless REPORT is already there.
answer_gold() {
  local gold=$1 docs=$2 idx=$3 report=$4 reader=$5
  [ -f "$idx/index.sqlite" ] || qa index "$docs" -i "$idx"
  [ -f "$report" ] || qa eval "$gold" -i "$idx" --reader "$reader" --calibration none --min-score 0 \
    --report "$report" > "${report%.jsonl}.txt"
}
