#!/usr/bin/env bash
# Issue 29's measurements in one go, ending in one report page (2 cores, ~15 min on an AVX2 AMD EPYC):
#   1. the AlgoPerf-2026 self-tuning preview: the submissions' fixed configurations (st_*) against the self-tuning
#      baseline, 12 studies on the light workloads, with the paired analysis and its self-checks
#   2. its null test (the baseline and a twin with other seeds, in the field of the preview)
#   3. the new-methods and new-methods-gpt studies (quick: their seed plans, every arm tuned)
#   4. the report page: $OUT/page/index.html (the board's section, then the studies)
# Trials and runs are cached in $OUT: re-running after an interruption resumes. Wall times go to $OUT/wall_times.md.
#
#   benchmarks/methods_2026.sh
#   STUDIES=6 OUT=runs/methods_2026_small benchmarks/methods_2026.sh   # a smaller board (the paired analysis needs 6)
set -uo pipefail
cd "$(dirname "$0")/.."
DL=${DL:-.venv/bin/descentlab}
OUT=${OUT:-runs/methods_2026}
STUDIES=${STUDIES:-12}
WORKERS=${WORKERS:-2}
A=st_nadamw,st_cautious_nadamw,st_lion,st_ademamix,st_muon
W=${WORKLOADS:-logreg,digits,mnist1d_mlp}
mkdir -p "$OUT"
STORE=$OUT/board.db
echo "| step | wall s |" > "$OUT/wall_times.md"
echo "|---|---:|" >> "$OUT/wall_times.md"

step() {  # step NAME COMMAND...: run, time, record; a failed step stops the script with its exit code
  local name=$1; shift
  local t0=$SECONDS
  "$@"; local rc=$?
  echo "| $name | $((SECONDS - t0)) |" >> "$OUT/wall_times.md"
  if [[ $rc -ne 0 ]]; then echo "step $name failed (exit $rc)" >&2; exit $rc; fi
}

BOARD=(--tuning self -a "$A" -w "$W" --studies "$STUDIES" --store "$STORE")
step board "$DL" bench run "${BOARD[@]}" --executor processes --workers "$WORKERS" --no-progress
step board-report "$DL" bench report "${BOARD[@]}" --out "$OUT/board"
step null-test "$DL" bench null-test -a st_nadamw --tuning self -w "$W" --studies "$STUDIES" \
  --others st_cautious_nadamw,st_lion,st_ademamix,st_muon --store "$STORE" --executor processes \
  --workers "$WORKERS" --out "$OUT/null_test.md"
for s in new-methods new-methods-gpt; do
  step "$s" env OMP_NUM_THREADS=1 "$DL" study "$s" --quick --out "$OUT/$s" --store "$OUT/studies.db"
done
step page "$DL" report --bench "$OUT/board" --study "$OUT/new-methods" --study "$OUT/new-methods-gpt" \
  --out "$OUT/page" --title "The methods of 2026: AlgoPerf's self-tuning field and the new-methods studies"
cat "$OUT/wall_times.md"
