#!/usr/bin/env bash
# The protein demo on villin as recorded in experiments/proteins/README.md:
# prepare -> train (experiment=protein_demo) -> sample (rollouts from frame 0 of replica 1) -> evaluate.
#
#   experiments/proteins/run_villin.sh [SIM_DIR] [OUT_DIR] [REPLICAS] [ROLLOUTS] [CHUNKS]
#
# SIM_DIR holds villin/villin.pdb + villin_prod_R{i}_fit.xtc (default data/proteins/md); REPLICAS is a
# Hydra list ("[1,2,3]"); ROLLOUTS x (CHUNKS x 11 + 1) frames are generated (12-frame windows).
# TRAIN_OVERRIDES (environment) adds Hydra overrides to the training command. Wall times of each step go
# to OUT_DIR/timings.txt. The checkpoint stays in OUT_DIR/train (*.ckpt is not committed).
set -euo pipefail
SIM=${1:-data/proteins/md}
OUT=${2:-experiments/proteins/villin}
REPLICAS=${3:-[1,2,3]}
ROLLOUTS=${4:-3}
CHUNKS=${5:-3}
PY=${PY:-.venv/bin/python}
CACHE=.cache/protein_demo_villin_$(echo "$REPLICAS" | tr -dc '0-9')
mkdir -p "$OUT"
: > "$OUT/timings.txt"
timed() {
  local start=$(date +%s.%N)
  "$@"
  echo "$(printf '%.0f' "$(echo "$(date +%s.%N) - $start" | bc)") s: $*" >> "$OUT/timings.txt"
}
timed nice -n 5 $PY -m mdgen.prepare sim_dir="$SIM" out_dir="$CACHE" interval_ps=10 names=[villin] \
    "replicas=$REPLICAS" progress=false
timed nice -n 5 $PY -m mdgen.train experiment=protein_demo data.sim_dir="$SIM" data.cache_dir="$CACHE" \
    "data.replicas=$REPLICAS" hydra.run.dir="$OUT/train" logger=csv trainer.enable_progress_bar=false \
    ${TRAIN_OVERRIDES:-}
timed nice -n 5 $PY -m mdgen.sample ckpt_path="$OUT/train/checkpoints/last.ckpt" out_dir="$OUT/samples" \
    input_pdb="$SIM/villin/villin.pdb" input_xtc="$SIM/villin/villin_prod_R1_fit.xtc" input_frame=0 \
    num_rollouts="$ROLLOUTS" num_chunks="$CHUNKS"
timed nice -n 5 $PY -m mdgen.evaluate task=protein samples_dir="$OUT/samples" reference_dir="$SIM" \
    out_dir="$OUT/evaluation"
cat "$OUT/timings.txt"
