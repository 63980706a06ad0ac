#!/usr/bin/env bash
# Packaging done-check (issue 13): mdgen installed NON-editable (`pip install .`, a built wheel) into a
# fresh venv without system site-packages, then every command run from a directory outside the
# repository, so the configs can only come from the installed package data (mdgen.conf).
#
#   bash scripts/check_wheel_install.sh            # work directory: a new /tmp/mdgen-wheel-check.XXXXXX
#   WORK=/tmp/w bash scripts/check_wheel_install.sh
#
# torch==2.13.0 is installed first (the CPU wheel from the machine's local wheel directory, no CUDA
# download); the rest is resolved by pip from pyproject.toml alone (`.[md]`, not the lock), so an
# undeclared dependency fails here. Several minutes (dependency install, ~12 command start-ups); not in
# `make test`. Exit status 0 only if every step passed; the last line says so.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/mdgen-wheel-check.XXXXXX)}
VENV=$WORK/venv
RUN=$WORK/run   # the directory every command runs in (not the repository)
mkdir -p "$RUN"
step() { echo "== $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

step "fresh venv $VENV (no system site-packages)"
python3 -m venv "$VENV"
PY=$VENV/bin/python
export PATH=$VENV/bin:$PATH
$PY -m pip install --quiet --upgrade pip
step "pip install torch==2.13.0 (CPU wheel)"
$PY -m pip install --quiet torch==2.13.0
# Built from a copy of the tracked files (what a clone has), so the build leaves nothing in the repository.
step "copy of the repository's tracked files -> $WORK/source"
mkdir -p "$WORK/source"
git -C "$REPO" ls-files -z | tar -C "$REPO" --null --no-recursion --ignore-failed-read -T - -cf - | tar -xf - -C "$WORK/source"
step "pip install '$WORK/source[md]' (non-editable: a wheel is built and installed)"
$PY -m pip install --quiet "$WORK/source[md]"
$PY -m pip check

cd "$RUN"
step "configs come from the installed package, not the repository"
CONF=$($PY -c 'from mdgen.config import config_dir; print(config_dir())')
echo "config_dir: $CONF"
case "$CONF" in "$VENV"/*) ;; *) fail "config_dir $CONF is not inside $VENV" ;; esac
$PY -c 'import mdgen, sys; sys.exit("mdgen imported from the repository" if "/src/mdgen" in mdgen.__file__ else 0)'

step "--help of every command"
for command in train sample evaluate prepare simulate convert export download; do
    mdgen-$command --help > "help_$command.txt" || fail "mdgen-$command --help"
    grep -q "^== Required options" "help_$command.txt" || fail "mdgen-$command --help: no Required section"
done
grep -qx "  ckpt_path" help_sample.txt && grep -qx "  out_dir" help_sample.txt || fail "sample help: required options"
grep -q "^  sampler: " help_sample.txt || fail "sample help: sampler group"
if grep -qE "^  (trainer|callbacks|data|model): " help_sample.txt; then fail "sample help lists training groups"; fi
$PY -m mdgen.evaluate --help > help_evaluate_m.txt
grep -qx "  samples_dir" help_evaluate_m.txt && grep -qx "  reference_dir" help_evaluate_m.txt \
    || fail "python -m mdgen.evaluate --help: required options"
mdgen-roundtrip --help > /dev/null
mdgen-bench --help > /dev/null
echo "help ok: $(ls help_*.txt | wc -l) texts"

step "copy the inputs: data/demo (MD of 15 tetrapeptides, splits) and the shipped checkpoint"
mkdir -p data
cp -r "$REPO/data/demo" data/demo
cp "$REPO/checkpoints/tetrapeptide_forward.ckpt" model.ckpt

step "mdgen-prepare: two demo peptides -> a cache"
mdgen-prepare sim_dir=data/demo/md out_dir=cache 'names=[MKWE,PYDS]' progress=false
test -f cache/MKWE/manifest.json && test -f cache/PYDS/manifest.json || fail "prepare: no manifests"

step "mdgen-sample: the shipped model, 1 rollout x 1 chunk from data/demo's MKWE.pdb (input_pdb)"
mdgen-sample ckpt_path=model.ckpt out_dir=samples input_pdb=data/demo/md/MKWE/MKWE.pdb \
    num_rollouts=1 num_chunks=1
$PY - <<'EOF'
import mdtraj
traj = mdtraj.load("samples/MKWE.xtc", top="samples/MKWE.pdb")
assert traj.n_frames >= 2 and traj.n_residues == 4, (traj.n_frames, traj.n_residues)
print(f"sampled MKWE: {traj.n_frames} frames, {traj.n_atoms} atoms")
EOF

step "python -m mdgen.evaluate: the sample against its MD"
$PY -m mdgen.evaluate samples_dir=samples reference_dir=data/demo/md task=forward out_dir=eval \
    'names=[MKWE]' plots=false allow_failures=true
test -f eval/metrics.json || fail "evaluate: no metrics.json"

step "mdgen-train: one batch (debug=fdr) of experiment=demo_forward model=tiny on ./data/demo"
mdgen-train experiment=demo_forward model=tiny debug=fdr hydra.run.dir=train_run

step "mdgen-export, mdgen-simulate (2 ps of a dipeptide)"
mdgen-export in_ckpt=model.ckpt out_ckpt=exported.ckpt use_ema=false
mdgen-simulate 'sequences=[AA]' out_dir=md_out length_ns=0.002 equilibration_ps=1 save_interval_ps=1 \
    minimization_max_iterations=50 progress=false
test -f md_out/AA/AA.xtc || fail "simulate: no AA.xtc"

echo "check_wheel_install: all steps passed (work directory $WORK)"
