#!/usr/bin/env bash
# mlanet_lammps: one entry point for users and CI.
#   bash run.sh            set everything up (venv, dependencies, LAMMPS build) and run the demo job
#   bash run.sh test       set up (fast when done) and run the test suite
#   bash run.sh setup      only set up
#   bash run.sh lint       set up Python only and run the linter (ruff check ., configured in pyproject.toml)
#   bash run.sh active     set up Python only and run the active-learning demo (GFN1-xTB labels, about 12 minutes)
# Idempotent: a second run reuses the venv, the installed package and the cached LAMMPS build.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"
VENV=${MLANET_VENV:-$PWD/.venv}
PY=${PYTHON:-python3}
JOBS=${JOBS:-$(nproc)}
# keep glibc from unmapping the model's large per-step tensors: ~1.7x faster. The setting is TUNABLES in
# mlanet_lammps/allocator.py, which prints it when run as a plain script (no venv needed); a set GLIBC_TUNABLES wins.
if [[ -z ${GLIBC_TUNABLES+set} ]]; then
    GLIBC_TUNABLES=$("$PY" mlanet_lammps/allocator.py) \
        || { echo "error: '$PY mlanet_lammps/allocator.py' failed. Fix: set PYTHON=/path/to/python3.11" >&2; exit 2; }
    export GLIBC_TUNABLES
fi

log() { printf '\n== %s\n' "$*"; }

setup_python() {
    if [[ ! -x $VENV/bin/python ]]; then
        "$PY" -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 required"' \
            || { echo "error: $PY is older than 3.11. Fix: install python3.11 or set PYTHON=/path/to/python3.11" >&2; exit 2; }
        log "creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    # torch from the pinned CPU wheel; every other dependency from pyproject.toml (re-installed only when it changes)
    "$VENV/bin/python" -c 'import torch' 2>/dev/null || "$VENV/bin/pip" install -q "torch==2.13.0"
    local stamp="$VENV/.mlanet-installed" want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]] || ! "$VENV/bin/python" -c 'import mlanet_lammps' 2>/dev/null; then
        log "installing mlanet_lammps and its dependencies"
        "$VENV/bin/pip" install -q -e ".[dev]"
        echo "$want" > "$stamp"
    fi
}

setup_lammps() {
    log "LAMMPS (pair_style mliap unified) in $VENV"
    local deps=()
    [[ $(id -u) == 0 ]] && deps=(--install-deps)
    bash cmake/build_lammps.sh --venv "$VENV" --jobs "$JOBS" "${deps[@]}"
    # mpi4py (Python-driven MPI runs, e.g. lammps(comm=MPI.COMM_WORLD)) must be built against the system MPI:
    # PyPI's binary wheel looks for libmpi.so.12, which Debian's mpich does not ship.
    if ! "$VENV/bin/python" -c 'from mpi4py import MPI' 2>/dev/null; then
        log "building mpi4py against the system MPI"
        "$VENV/bin/pip" install -q --force-reinstall --no-deps --no-binary mpi4py "mpi4py>=3.1"
    fi
}

demo() {
    local run=runs/water-demo
    log "training MLANet on the bundled water frames ($run)"
    if [[ -f $run/best.ckpt ]] && ! "$VENV/bin/python" -c "import sys; from mlanet_lammps.checkpoint import \
            load_checkpoint; load_checkpoint(sys.argv[1])" "$run/best.ckpt" >/dev/null 2>&1; then
        local stale="$run.stale-$(date +%Y%m%d%H%M%S)"
        echo "$run/best.ckpt was written by another model/checkpoint version: moved to $stale, retraining"
        mv "$run" "$stale"
    fi
    if [[ -f $run/best.ckpt ]]; then
        echo "found $run/best.ckpt: skipping training (delete $run to retrain)"
    else
        "$VENV/bin/mlanet-train" examples/water/train.yaml
    fi
    log "evaluating on the held-out validation frames ($run/valid.extxyz)"
    "$VENV/bin/mlanet-eval" "$run/best.ckpt" "$run/valid.extxyz" --json "$run/eval.json" --plot "$run/parity.png"
    log "exporting for LAMMPS"
    "$VENV/bin/mlanet-export" "$run/best.ckpt" -o "$run/water.mliap.pt" --dtype float32
    log "LAMMPS MD of the water box (NVT then NVE): 1 MPI rank, then 2"
    (cd lammps_inputs \
        && "$VENV/bin/lmp" -in water_nvt_nve.in -var model "../$run/water" -var nvt_steps 200 -var nve_steps 200 \
            -log "../$run/log.1rank.lammps" \
        && mpirun -np 2 "$VENV/bin/lmp" -in water_nvt_nve.in -var model "../$run/water" -var nvt_steps 200 \
            -var nve_steps 200 -log "../$run/log.2rank.lammps") | grep -E "^(Loop time|Performance|NVE energy drift)"
    echo "demo outputs in $run: best.ckpt, metrics.csv, eval.json, parity.png, water.mliap.pt, water.lammps.in, log.*.lammps"
}

active_demo() {
    local run=runs/active-demo/start
    log "start model on 6 GFN1-xTB water frames ($run)"
    if [[ -f $run/done ]]; then
        echo "found $run/best.ckpt (delete runs/active-demo to start over)"
    elif [[ -f $run/last.ckpt ]]; then
        "$VENV/bin/mlanet-train" examples/active/train.yaml --resume && touch "$run/done"
    else
        "$VENV/bin/mlanet-train" examples/active/train.yaml && touch "$run/done"
    fi
    log "active learning: MD, flagged frames, GFN1-xTB labels, fine-tuning (runs/active-demo/loop)"
    "$VENV/bin/mlanet-active" examples/active/active.yaml
}

cmd=${1:-demo}
case $cmd in
    setup) setup_python; setup_lammps ;;
    test) setup_python; setup_lammps; shift; "$VENV/bin/python" -m pytest -q "$@" tests ;;
    lint) setup_python; "$VENV/bin/ruff" check . ;;
    active) setup_python; active_demo ;;
    demo) setup_python; setup_lammps; demo ;;
    *) echo "usage: bash run.sh [setup|test|lint|demo|active]" >&2; exit 2 ;;
esac
