#!/usr/bin/env bash
# GPU check on a machine with an NVIDIA GPU, a CUDA PyTorch and no network: install mlanet_lammps into a venv layered
# on that PyTorch, build a serial CPU LAMMPS (the model runs on the GPU through `mlanet-export --device cuda`), run the
# GPU tests, then the GPU benchmarks with a CPU baseline on the same machine.
#
#   bash benchmarks/gpu_check.sh --source lammps-src.tar.gz --checkpoint best.ckpt --out DIR \
#        [--wheels DIR] [--tools DIR] [--jobs N] [--reps "1 2 4 6 8"]
#
# --source    LAMMPS source tarball or directory (passed to cmake/build_lammps.sh)
# --checkpoint a trained water checkpoint for the benchmarks
# --wheels    wheels of dependencies the machine lacks (e.g. ase, vesin), installed offline
# --tools     folder of build tools (e.g. patch, make) used only where the machine has none
# Writes DIR/gpu_check.log (everything), DIR/lammps_speed_{cuda,cuda_eager,cpu}.{md,json} and DIR/model_speed.md.
# Each stage runs even if an earlier one failed; the exit status is that of the GPU tests.
set -u
SOURCE="" CKPT="" OUTDIR="" WHEELS="" TOOLS="" JOBS=$(nproc) REPS="1 2 4 6 8"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --source) SOURCE=$2; shift 2 ;;
    --checkpoint) CKPT=$2; shift 2 ;;
    --out) OUTDIR=$2; shift 2 ;;
    --wheels) WHEELS=$2; shift 2 ;;
    --tools) TOOLS=$(realpath "$2"); shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    *) echo "gpu_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $SOURCE && -n $CKPT && -n $OUTDIR ]] || { sed -n 2,14p "$0"; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd) SOURCE=$(realpath "$SOURCE") CKPT=$(realpath "$CKPT")
exec > >(tee -a "$OUTDIR/gpu_check.log") 2>&1
cd "$ROOT"
log() { echo "[gpu_check $(date +%T)] $*"; }
stage() {  # stage NAME SECONDS CMD...: run with a time limit, log its status
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  log "== $name"
  timeout "$limit" "$@"
  local rc=$?
  log "== $name: exit $rc after $((SECONDS - t0)) s"
  return $rc
}

[[ -n $TOOLS ]] && export PATH=$PATH:$TOOLS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || log "nvidia-smi failed"
BASE_PY=$(command -v python3)
VENV=${MLANET_GPU_VENV:-/tmp/mlanet-gpu-venv}
export MLANET_LAMMPS_CACHE=${MLANET_LAMMPS_CACHE:-/tmp/mlanet-lammps-cache}

# venv layered on the machine's Python environment (its CUDA PyTorch, e3nn, numpy, Cython)
"$BASE_PY" -m venv --without-pip "$VENV"
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$BASE_PY" -c 'import site; print("\n".join(site.getsitepackages()))' > "$SITE/base-environment.pth"
for tool in cythonize cython; do
  [[ -x $(dirname "$BASE_PY")/$tool ]] && ln -sf "$(dirname "$BASE_PY")/$tool" "$VENV/bin/$tool"
done
PY=$VENV/bin/python
if [[ -n $WHEELS ]]; then
  "$PY" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl || log "wheel install failed"
fi
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation "$ROOT" || log "package install failed"
for tool in g++ cmake make patch; do log "$tool: $(command -v $tool || echo MISSING)"; done
"$PY" -c 'import sysconfig, os; inc = sysconfig.get_paths()["include"]; print("Python.h:", os.path.exists(inc + "/Python.h"), inc)'
"$PY" -c 'import torch, e3nn, mlanet_lammps; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else "", "e3nn", e3nn.__version__)'

# serial LAMMPS in the background while the model-only GPU tests run
log "building LAMMPS (serial, $JOBS jobs)"
bash cmake/build_lammps.sh --venv "$VENV" --source "$SOURCE" --jobs "$JOBS" --cmake-arg -DBUILD_MPI=OFF \
  > "$OUTDIR/build.txt" 2>&1 &
BUILD=$!
stage "GPU model tests" 240 "$PY" -m pytest -q -p no:cacheprovider tests/lammps/test_gpu.py \
  -k "calculator or module_on_gpu"
MODEL_TESTS_RC=$?
wait $BUILD
BUILD_RC=$?
tail -n 25 "$OUTDIR/build.txt"; rm -f "$OUTDIR/build.txt"
log "LAMMPS build exit $BUILD_RC"

# MLANET_COMPILE=yes: the GPU LAMMPS run uses the compiled evaluator (the tests' default is eager)
stage "GPU LAMMPS test, compiled" 240 env MLANET_COMPILE=yes "$PY" -m pytest -q -p no:cacheprovider \
  tests/lammps/test_gpu.py::test_lammps_with_cuda_export_matches_cpu_export
LAMMPS_RC=$?
stage "single-rank LAMMPS parity" 180 "$PY" -m pytest -q -p no:cacheprovider \
  "tests/lammps/test_lammps_parity.py::test_lammps_matches_ase"
TESTS_RC=$(( $? | LAMMPS_RC | MODEL_TESTS_RC ))

cd benchmarks
speed() {  # speed NAME SECONDS [env VAR=VALUE] lammps_speed.py ARGS...: tables into DIR, exported models not kept
  local name=$1 limit=$2; shift 2
  stage "$name" "$limit" "$@"
  rm -f "$OUTDIR"/*_model.mliap.pt "$OUTDIR"/*_model.lammps.in
}
# shellcheck disable=SC2086
speed "LAMMPS speed, model on the GPU, compiled" 300 "$PY" lammps_speed.py "$CKPT" --device cuda --reps $REPS \
  --ranks 1 --steps 20 --out "$OUTDIR/lammps_speed_cuda"
# shellcheck disable=SC2086
speed "LAMMPS speed, model on the GPU, eager (baseline)" 200 "$PY" lammps_speed.py "$CKPT" --device cuda \
  --reps $REPS --ranks 1 --steps 20 --compile no --out "$OUTDIR/lammps_speed_cuda_eager"
stage "bare model speed" 120 bash -c "'$PY' model_speed.py '' --device cuda --clock wall --reps 1 2 4 > '$OUTDIR/model_speed.md' &&
  '$PY' model_speed.py '' --device cpu --clock wall --threads $(nproc) --reps 1 2 >> '$OUTDIR/model_speed.md'"
cat "$OUTDIR/model_speed.md"
speed "LAMMPS speed, model on the CPU (baseline, all cores)" 180 "$PY" lammps_speed.py "$CKPT" --device cpu \
  --reps 1 2 --ranks 1 --threads "$(nproc)" --steps 5 --out "$OUTDIR/lammps_speed_cpu"
exit $TESTS_RC
