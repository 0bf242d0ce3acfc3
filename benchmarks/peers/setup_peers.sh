#!/usr/bin/env bash
# Create the peers' virtual environments (idempotent): NequIP 0.19.1 and mace-torch 0.3.16, each with torch==2.13.0.
#   bash benchmarks/peers/setup_peers.sh [DIR]     (default DIR: $MLANET_PEERS_DIR or ~/.cache/mlanet_lammps/peers)
# Prints DIR. Each venv is marked complete only after its install succeeded.
set -euo pipefail
DIR=${1:-${MLANET_PEERS_DIR:-$HOME/.cache/mlanet_lammps/peers}}
PYTHON=${PYTHON:-python3}
mkdir -p "$DIR"
install() {  # name, pip requirement
    local venv="$DIR/$1"
    if [[ -f "$venv/.complete" && "$(cat "$venv/.complete")" == "$2" ]]; then return; fi
    echo "setting up $1 ($2) in $venv" >&2
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install -q torch==2.13.0 >&2
    "$venv/bin/pip" install -q torch==2.13.0 "$2" >&2   # torch pinned again: a peer may not pull another build
    echo "$2" > "$venv/.complete"
}
install nequip nequip==0.19.1
install mace mace-torch==0.3.16
echo "$DIR"
