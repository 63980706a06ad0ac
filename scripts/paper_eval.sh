#!/usr/bin/env bash
# `make paper-eval`: the paper's evaluation with the published weights, on whatever `python -m mdgen.download`
# has fetched. Each task runs when its converted checkpoint and its data are present, on the test-split
# entries that are present (at most PAPER_MAX of them), and is skipped with a note otherwise:
#   forward      weights/forward_sim.ckpt   + data/4AA_sims            (4AA_test.csv)
#   interp       weights/interpolation.ckpt + data/4AA_sims            (4AA_test.csv)
#   upsample     weights/upsampling.ckpt    + data/4AA_sims_implicit   (4AA_implicit_test.csv)
#   inpaint      weights/inpainting.ckpt    + data/4AA_sims            (4AA_test.csv)
#   protein      weights/atlas.ckpt         + data/atlas_sims          (atlas_test.csv)
# Outputs: $PAPER_DIR/<task>/{samples/, report.md, metrics.json, plots/}. A re-run skips finished samples.
# Cost: everything runs at the paper's sizes (forward: 100 ns per peptide; upsample: each whole 100 fs
# implicit-solvent trajectory); use a GPU machine, or PAPER_MAX / PAPER_CHUNKS / PAPER_PATHS to shrink it.
# Checked mechanically on CPU with small converted checkpoints (forward, interp); the upsample, inpaint and
# protein branches have not been run against real downloads.
set -euo pipefail

PY=${PY:-.venv/bin/python}
WEIGHTS_DIR=${WEIGHTS_DIR:-weights}
DATA_DIR=${DATA_DIR:-data}
SPLITS_DIR=${SPLITS_DIR:-data/splits}
CACHE_DIR=${CACHE_DIR:-.cache}
PAPER_DIR=${PAPER_DIR:-outputs/paper}
PAPER_MAX=${PAPER_MAX:-100}            # test entries per task
PAPER_CHUNKS=${PAPER_CHUNKS:-10}        # forward: chained 1000-frame windows (10 x 10 ns = the paper's 100 ns)
PAPER_PATHS=${PAPER_PATHS:-100}         # interp: transition paths per peptide
PAPER_DESIGNS=${PAPER_DESIGNS:-100}     # inpaint: designs per peptide
FORWARD_SPLIT=${FORWARD_SPLIT:-$SPLITS_DIR/4AA_test.csv}
IMPLICIT_SPLIT=${IMPLICIT_SPLIT:-$SPLITS_DIR/4AA_implicit_test.csv}
ATLAS_SPLIT=${ATLAS_SPLIT:-$SPLITS_DIR/atlas_test.csv}
ran=0

# names of `split` whose files `dir/NAME/NAME<suffix>` exist, one per line (at most PAPER_MAX)
present() {
    local split=$1 dir=$2 suffix=$3 count=0 name
    while read -r name; do
        if [ -f "$dir/$name/$name.pdb" ] && [ -f "$dir/$name/$name$suffix" ]; then
            echo "$name"
            count=$((count + 1))
            if [ "$count" -ge "$PAPER_MAX" ]; then break; fi
        fi
    done < <(tail -n +2 "$split" | cut -d, -f1)
}
as_list() { paste -sd, -; }
skip() { echo "== paper-eval: skipping $1 ($2)"; }

evaluate() {  # task samples reference names
    "$PY" -m mdgen.evaluate task="$1" samples_dir="$2" reference_dir="$3" "names=[$4]" out_dir="$(dirname "$2")"
}

forward() {
    local ckpt=$WEIGHTS_DIR/forward_sim.ckpt names
    [ -f "$ckpt" ] || { skip forward "no $ckpt: python -m mdgen.download target=weights"; return; }
    names=$(present "$FORWARD_SPLIT" "$DATA_DIR/4AA_sims" .xtc)
    [ -n "$names" ] || { skip forward "no test peptide in $DATA_DIR/4AA_sims: python -m mdgen.download target=4aa split=$FORWARD_SPLIT"; return; }
    echo "== paper-eval: forward simulation of $(echo "$names" | wc -l) test peptides"
    local out=$PAPER_DIR/forward list
    list=$(echo "$names" | as_list)
    mkdir -p "$out"
    { head -n 1 "$FORWARD_SPLIT"; grep -E "^($(echo "$names" | paste -sd'|' -))," "$FORWARD_SPLIT"; } >"$out/split.csv"
    "$PY" -m mdgen.prepare sim_dir="$DATA_DIR/4AA_sims" out_dir="$CACHE_DIR/4AA_sims_10ps" interval_ps=10 \
        "names=[$list]" progress=false
    "$PY" -m mdgen.sample ckpt_path="$ckpt" out_dir="$out/samples" split="$out/split.csv" \
        cache_dir="$CACHE_DIR/4AA_sims_10ps" num_rollouts=1 num_chunks="$PAPER_CHUNKS"
    evaluate forward "$out/samples" "$DATA_DIR/4AA_sims" "$list"
    ran=1
}

per_peptide() {  # task ckpt dir split suffix reference sample-options...
    local task=$1 ckpt=$2 dir=$3 split=$4 suffix=$5 reference=$6 names name
    shift 6
    [ -f "$ckpt" ] || { skip "$task" "no $ckpt: python -m mdgen.download target=weights"; return; }
    names=$(present "$split" "$dir" "$suffix")
    [ -n "$names" ] || { skip "$task" "no test entry of $split in $dir"; return; }
    echo "== paper-eval: $task on $(echo "$names" | wc -l) test entries"
    local out=$PAPER_DIR/$task
    for name in $names; do
        "$PY" -m mdgen.sample ckpt_path="$ckpt" out_dir="$out/samples" name="$name" \
            input_pdb="$dir/$name/$name.pdb" input_xtc="$dir/$name/$name$suffix" "$@"
    done
    evaluate "$task" "$out/samples" "$reference" "$(echo "$names" | as_list)"
    ran=1
}

upsample_reference() {  # the evaluation reads REF/NAME/NAME_fine.xtc: link the published 100 fs files there
    local ref=$PAPER_DIR/upsample/reference name
    for name in $(present "$IMPLICIT_SPLIT" "$DATA_DIR/4AA_sims_implicit" .xtc); do
        mkdir -p "$ref/$name"
        ln -sf "$(realpath "$DATA_DIR/4AA_sims_implicit/$name/$name.pdb")" "$ref/$name/$name.pdb"
        ln -sf "$(realpath "$DATA_DIR/4AA_sims_implicit/$name/$name.xtc")" "$ref/$name/$name.xtc"
        ln -sf "$(realpath "$DATA_DIR/4AA_sims_implicit/$name/$name.xtc")" "$ref/$name/${name}_fine.xtc"
    done
    echo "$ref"
}

forward
per_peptide interp "$WEIGHTS_DIR/interpolation.ckpt" "$DATA_DIR/4AA_sims" "$FORWARD_SPLIT" .xtc \
    "$DATA_DIR/4AA_sims" transition=lowest_flux num_samples="$PAPER_PATHS"
per_peptide upsample "$WEIGHTS_DIR/upsampling.ckpt" "$DATA_DIR/4AA_sims_implicit" "$IMPLICIT_SPLIT" .xtc \
    "$(upsample_reference)" allow_extrapolation=true
per_peptide inpaint "$WEIGHTS_DIR/inpainting.ckpt" "$DATA_DIR/4AA_sims" "$FORWARD_SPLIT" .xtc \
    "$DATA_DIR/4AA_sims" num_samples="$PAPER_DESIGNS" sampler=euler
per_peptide protein "$WEIGHTS_DIR/atlas.ckpt" "$DATA_DIR/atlas_sims" "$ATLAS_SPLIT" _prod_R1_fit.xtc \
    "$DATA_DIR/atlas_sims" num_rollouts=1 num_chunks=1

if [ "$ran" = 0 ]; then
    echo "paper-eval: nothing to evaluate yet. Fetch weights and data first, e.g." >&2
    echo "  $PY -m mdgen.download 'target=[weights,4aa]' split=$FORWARD_SPLIT" >&2
    exit 2
fi
echo "== paper-eval done: reports in $PAPER_DIR/<task>/report.md"
