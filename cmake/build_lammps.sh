#!/usr/bin/env bash
# Build and install LAMMPS (pinned 4 Jul 2026 release) with ML-IAP + PYTHON into a
# Python virtual environment, so that `$VENV/bin/lmp` can run
# `pair_style mliap unified <model.pkl> <ghostneigh>` with mlanet_lammps models.
#
# Usage:
#   bash cmake/build_lammps.sh --venv PATH [--source TARBALL_OR_DIR]
#        [--preset cmake/lammps-cpu.cmake] [--jobs N] [--install-deps]
#        [--cmake-arg -DFOO=BAR]... [--force]
#
# See cmake/README.md for details (source lookup order, cache layout, presets).
set -euo pipefail

# ----------------------------------------------------------------------------
# pinned source
# ----------------------------------------------------------------------------
LAMMPS_VERSION=20260704                    # LAMMPS version date (4 Jul 2026)
LAMMPS_TAG=stable_4Jul2026                 # upstream git tag of that release
LAMMPS_DEB_VERSION=20260704+dfsg-2         # Debian source package carrying it
LAMMPS_TARBALL=lammps_20260704+dfsg.orig.tar.gz
LAMMPS_SHA256=cddbc45a047416bd48a4a0b87f24a5b61b3446982b74d18cafe619c22b17eb62
SCRIPT_REV=2                               # bump to invalidate all build-cache keys

# LAMMPS packages whose sources are always extracted (cheap; lets users switch
# them on with --cmake-arg without re-extracting); packages named PKG_X=ON in
# the preset / --cmake-arg are added automatically.
BASE_PKGS=(ML-IAP ML-SNAP PYTHON MOLECULE KSPACE EXTRA-FIX EXTRA-COMPUTE EXTRA-PAIR OPENMP)

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${MLANET_LAMMPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlanet_lammps}

log()  { printf '[build_lammps] %s\n' "$*"; }
warn() { printf '[build_lammps] WARNING: %s\n' "$*" >&2; }
die()  { printf '[build_lammps] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  cat <<EOF

Options:
  --venv PATH        virtual environment to install into (required); lmp, liblammps.so
                     and the 'lammps' Python module are installed there
  --source SRC       LAMMPS source tarball or unpacked source directory
                     (default: \$MLANET_LAMMPS_SOURCE, then cache, Debian, upstream)
  --preset FILE      CMake initial-cache preset (default: cmake/lammps-cpu.cmake)
  --jobs N           parallel compile jobs (default: nproc)
  --cmake-arg ARG    extra argument for the CMake configure step (repeatable)
  --install-deps     apt-get install the build prerequisites first (needs root)
  --force            rebuild / reinstall even if the cache says it is up to date
  --no-patches       build stock LAMMPS: apply none of cmake/patches (use with a pristine --source)
  -h, --help         this help

Cache: $CACHE
EOF
}

# ----------------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------------
VENV=""
SOURCE_ARG=""
PRESET="$SCRIPT_DIR/lammps-cpu.cmake"
JOBS=""
INSTALL_DEPS=0
FORCE=0
NO_PATCHES=0
EXTRA_CMAKE_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) VENV=${2:?--venv needs a path}; shift 2 ;;
    --venv=*) VENV=${1#*=}; shift ;;
    --source) SOURCE_ARG=${2:?--source needs a path}; shift 2 ;;
    --source=*) SOURCE_ARG=${1#*=}; shift ;;
    --preset) PRESET=${2:?--preset needs a file}; shift 2 ;;
    --preset=*) PRESET=${1#*=}; shift ;;
    --jobs|-j) JOBS=${2:?--jobs needs a number}; shift 2 ;;
    --jobs=*) JOBS=${1#*=}; shift ;;
    --cmake-arg) EXTRA_CMAKE_ARGS+=("${2:?--cmake-arg needs a value}"); shift 2 ;;
    --cmake-arg=*) EXTRA_CMAKE_ARGS+=("${1#*=}"); shift ;;
    --install-deps) INSTALL_DEPS=1; shift ;;
    --force) FORCE=1; shift ;;
    --no-patches) NO_PATCHES=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ -n "$VENV" ]] || { usage >&2; die "--venv PATH is required"; }
[[ -n "$JOBS" ]] || JOBS=$(nproc 2>/dev/null || echo 2)
[[ "$JOBS" =~ ^[0-9]+$ ]] || die "--jobs must be a number, got '$JOBS'"
[[ -f "$PRESET" ]] || die "preset file not found: $PRESET"
PRESET=$(cd "$(dirname "$PRESET")" && pwd)/$(basename "$PRESET")
[[ -x "$VENV/bin/python" ]] || die "no python in venv: $VENV/bin/python does not exist (create it with: python3 -m venv $VENV)"
VENV=$(cd "$VENV" && pwd)
PY="$VENV/bin/python"
T_START=$(date +%s)

# ----------------------------------------------------------------------------
# prerequisites
# ----------------------------------------------------------------------------
APT_DEPS="cmake g++ make patch mpich libmpich-dev"
if [[ $INSTALL_DEPS == 1 ]] && ! dpkg -s $APT_DEPS >/dev/null 2>&1; then
  SUDO=""; [[ $(id -u) == 0 ]] || SUDO="sudo"
  log "installing build prerequisites: $APT_DEPS"
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $APT_DEPS
fi

check_prereqs() {
  local bad=0
  command -v cmake >/dev/null || { echo "[build_lammps] MISSING: cmake -> run: apt-get install -y cmake" >&2; bad=1; }
  command -v "${CXX:-g++}" >/dev/null || { echo "[build_lammps] MISSING: C++ compiler ${CXX:-g++} -> run: apt-get install -y g++" >&2; bad=1; }
  command -v make >/dev/null || { echo "[build_lammps] MISSING: make -> run: apt-get install -y make" >&2; bad=1; }
  if [[ " ${EXTRA_CMAKE_ARGS[*]+"${EXTRA_CMAKE_ARGS[*]}"} " != *" -DBUILD_MPI=OFF "* ]]; then  # serial builds need no MPI
    command -v mpicxx >/dev/null || { echo "[build_lammps] MISSING: MPI (mpicxx) -> run: apt-get install -y mpich libmpich-dev (or --cmake-arg -DBUILD_MPI=OFF for a serial build)" >&2; bad=1; }
  fi
  command -v tar >/dev/null && command -v sha256sum >/dev/null || { echo "[build_lammps] MISSING: tar/sha256sum -> run: apt-get install -y tar coreutils" >&2; bad=1; }
  if command -v cmake >/dev/null; then
    local cv; cv=$(cmake --version | sed -n '1s/[^0-9]*\([0-9][0-9.]*\).*/\1/p')
    if [[ "$(printf '%s\n%s\n' 3.20 "$cv" | sort -V | head -1)" != 3.20 ]]; then
      echo "[build_lammps] MISSING: cmake >= 3.20 (found $cv) -> run: apt-get install -y cmake (or pip install cmake)" >&2; bad=1
    fi
  fi
  local inc
  inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)
  if [[ -z "$inc" || ! -f "$inc/Python.h" ]]; then
    local pv; pv=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3)
    echo "[build_lammps] MISSING: Python headers ($inc/Python.h) for $PY -> run: apt-get install -y python${pv}-dev (or use a python built with headers, e.g. pyenv)" >&2; bad=1
  fi
  "$PY" -c 'import numpy' 2>/dev/null || { echo "[build_lammps] MISSING: numpy in the venv -> run: $PY -m pip install numpy" >&2; bad=1; }
  [[ $bad == 0 ]] || die "prerequisites missing (see lines above; or rerun with --install-deps)"
}
check_prereqs

# ----------------------------------------------------------------------------
# source lookup: (a) --source / $MLANET_LAMMPS_SOURCE, (b) cache,
# (c) Debian source package (deb-src derived from the apt sources), (d) upstream
# ----------------------------------------------------------------------------
mkdir -p "$CACHE/src" "$CACHE/build"
TARBALL=""      # tarball to extract, or
SRC_DIR=""      # ready-made source tree
SRC_ID=""       # identity of the source for the build-cache key
SRC_LABEL=""    # human readable version label (build dir prefix)

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

use_tarball() {  # use_tarball FILE TRUSTED(0/1)
  local f=$1 sha
  sha=$(sha_of "$f")
  if [[ "$sha" == "$LAMMPS_SHA256" ]]; then
    log "source: $f (sha256 verified)"
    SRC_LABEL=$LAMMPS_VERSION
  else
    warn "sha256 of $f is $sha, NOT the pinned $LAMMPS_SHA256 (lammps $LAMMPS_VERSION)."
    warn "Using it anyway because it was requested explicitly; results may differ from the pinned version."
    SRC_LABEL=$(basename "$f" | sed -E 's/\.(orig\.)?tar\.(gz|xz|bz2)$//; s/[^A-Za-z0-9._+-]/_/g')
  fi
  TARBALL=$f
  SRC_ID="tarball:$sha"
}

find_source_user() {
  local s=${SOURCE_ARG:-${MLANET_LAMMPS_SOURCE:-}}
  [[ -n "$s" ]] || return 1
  if [[ -d "$s" ]]; then
    s=$(cd "$s" && pwd)
    [[ -f "$s/src/version.h" && -f "$s/cmake/CMakeLists.txt" ]] \
      || die "source directory $s does not look like LAMMPS (needs src/version.h and cmake/CMakeLists.txt)"
    log "source: directory $s (used as is)"
    SRC_DIR=$s
    SRC_ID="dir:$s"
    SRC_LABEL=$(sed -n 's/^#define LAMMPS_VERSION "\(.*\)"/\1/p' "$s/src/version.h" | tr -c 'A-Za-z0-9\n' '_' | head -1)
    [[ -n "$SRC_LABEL" ]] || SRC_LABEL=dir
    return 0
  elif [[ -f "$s" ]]; then
    use_tarball "$(cd "$(dirname "$s")" && pwd)/$(basename "$s")"
    return 0
  fi
  die "--source / MLANET_LAMMPS_SOURCE '$s' is neither a file nor a directory"
}

find_source_cache() {
  local f="$CACHE/src/$LAMMPS_TARBALL"
  [[ -f "$f" ]] || return 1
  if [[ "$(sha_of "$f")" != "$LAMMPS_SHA256" ]]; then
    warn "cached $f has a wrong sha256 (corrupt/partial download?); moving it to $f.bad"
    mv -f "$f" "$f.bad"
    return 1
  fi
  use_tarball "$f"
}

# print the archive URIs of all enabled "deb" entries (deb822 and one-line format)
apt_deb_uris() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk 'BEGIN{RS=""; FS="\n"}
         { types=""; uris=""; enabled="yes"
           for (i=1;i<=NF;i++) {
             if ($i ~ /^Types:/)   { types=$i }
             if ($i ~ /^URIs:/)    { uris=$i }
             if ($i ~ /^Enabled:[ \t]*no/) { enabled="no" }
           }
           if (enabled=="yes" && types ~ /[ \t]deb([ \t]|$)/ && uris != "") {
             sub(/^URIs:[ \t]*/, "", uris); n=split(uris, u, /[ \t]+/)
             for (j=1;j<=n;j++) if (u[j]!="") print u[j]
           } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$f" ]] || continue
    sed -n -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([a-z+]+:[^[:space:]]+).*/\2/p' "$f"
  done
}

# Signed-By of the stanza carrying URI (deb822 only), if any
apt_signed_by() {
  local uri=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    awk -v uri="$uri" 'BEGIN{RS=""; FS="\n"}
      { hit=0; sb=""
        for (i=1;i<=NF;i++) { if ($i ~ /^URIs:/ && index($i, uri)) hit=1; if ($i ~ /^Signed-By:/) sb=$i }
        if (hit && sb!="") { sub(/^Signed-By:[ \t]*/, "", sb); print sb; exit } }' "$f"
  done | head -1
}

find_source_debian() {
  command -v apt-get >/dev/null || return 1
  if [[ $(id -u) != 0 ]]; then
    warn "not root: skipping the Debian source package fallback (needs to add a deb-src entry)"
    return 1
  fi
  # the main archive URI: skip security / ports style archives (no 'sid' suite there)
  local uri
  uri=$(apt_deb_uris | grep -v -E 'security|updates|backports|ports' | head -1 || true)
  if [[ -z "$uri" ]]; then
    warn "no 'deb' archive URI found in /etc/apt/sources.list{,.d}; cannot use the Debian source package"
    return 1
  fi
  local list=/etc/apt/sources.list.d/mlanet-lammps-src.sources sb
  sb=$(apt_signed_by "$uri" || true)
  log "adding deb-src entry for suite sid (derived from apt sources) to $list"
  {
    echo "# written by mlanet_lammps cmake/build_lammps.sh: source packages only (lammps $LAMMPS_DEB_VERSION is in sid)"
    echo "Types: deb-src"
    echo "URIs: $uri"
    echo "Suites: sid"
    echo "Components: main"
    [[ -z "$sb" ]] || echo "Signed-By: $sb"
  } > "$list"
  # refresh only this list (fast; leaves the other package lists alone)
  apt-get update -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- \
          -o APT::Get::List-Cleanup=0 || warn "apt-get update reported errors (continuing)"
  local versions ver
  versions=$(apt-cache showsrc lammps 2>/dev/null | sed -n 's/^Version: //p' | sort -V -u || true)
  if [[ -z "$versions" ]]; then
    warn "apt-cache showsrc lammps offers no source package"
    return 1
  fi
  if grep -qxF "$LAMMPS_DEB_VERSION" <<<"$versions"; then
    ver=$LAMMPS_DEB_VERSION
  else
    ver=$(tail -1 <<<"$versions")
    warn "Debian no longer offers lammps $LAMMPS_DEB_VERSION; offered: $(tr '\n' ' ' <<<"$versions")"
    warn "using the NEWEST offered version $ver instead of the pinned one -- it will NOT match sha256 $LAMMPS_SHA256"
  fi
  local up=${ver#*:}; up=${up%-*}
  log "apt-get source --download-only lammps=$ver (into $CACHE/src)"
  # This exits non-zero when the .dsc / debian.tar.xz are gone from the mirror,
  # but the orig tarball still arrives: check for the file, not the exit status.
  (cd "$CACHE/src" && apt-get source --download-only "lammps=$ver") || \
    log "apt-get source exited non-zero (expected if .dsc/debian.tar.* are missing); checking for the orig tarball"
  local f
  for f in "$CACHE/src/lammps_${up}.orig.tar.gz" "$CACHE/src/lammps_${up}.orig.tar.xz"; do
    if [[ -s "$f" ]]; then
      use_tarball "$f"
      return 0
    fi
  done
  warn "Debian source download did not deliver lammps_${up}.orig.tar.*"
  return 1
}

find_source_upstream() {
  local url=${MLANET_LAMMPS_URL:-https://github.com/lammps/lammps/archive/refs/tags/${LAMMPS_TAG}.tar.gz}
  local f="$CACHE/src/lammps-${LAMMPS_TAG}.tar.gz"
  if [[ ! -s "$f" ]]; then
    log "downloading upstream release $LAMMPS_TAG from $url"
    if command -v curl >/dev/null; then
      curl -fL --retry 3 -o "$f.part" "$url" || { rm -f "$f.part"; return 1; }
    elif command -v wget >/dev/null; then
      wget -O "$f.part" "$url" || { rm -f "$f.part"; return 1; }
    else
      warn "neither curl nor wget available"; return 1
    fi
    mv "$f.part" "$f"
  fi
  warn "upstream tarball $f is not the pinned Debian orig tarball; its sha256 cannot be checked against $LAMMPS_SHA256"
  TARBALL=$f
  SRC_ID="tarball:$(sha_of "$f")"
  SRC_LABEL=$LAMMPS_TAG
  log "source: $f (sha256 ${SRC_ID#tarball:})"
}

find_source_user || find_source_cache || find_source_debian || find_source_upstream || \
  die "could not obtain the LAMMPS source. Put $LAMMPS_TARBALL (sha256 $LAMMPS_SHA256) into $CACHE/src/ or pass --source"

# ----------------------------------------------------------------------------
# build-cache key: source + preset(s) + python + compiler + options
# ----------------------------------------------------------------------------
preset_files() {  # the preset plus any preset it include()s from the same folder
  echo "$PRESET"
  sed -n -E 's/^[[:space:]]*include[[:space:]]*\([[:space:]]*"?\$\{CMAKE_CURRENT_LIST_DIR\}\/([^")[:space:]]+)"?.*/\1/p' "$PRESET" |
    while read -r inc; do [[ -f "$(dirname "$PRESET")/$inc" ]] && echo "$(dirname "$PRESET")/$inc"; done
}
# our fixes to the LAMMPS source (cmake/patches/*.patch, applied in name order; see each file's header)
PATCHES=()
[[ $NO_PATCHES == 1 ]] || for f in "$SCRIPT_DIR"/patches/*.patch; do [[ -f $f ]] && PATCHES+=("$f"); done
patches_id() { cat "${PATCHES[@]+"${PATCHES[@]}"}" /dev/null | sha256sum | cut -c1-12; }

apply_patches() {  # apply each patch once to $1; a patch already in the source is skipped
  local dir=$1 p
  for p in "${PATCHES[@]+"${PATCHES[@]}"}"; do
    if patch -d "$dir" -p1 -R --dry-run -s -f < "$p" >/dev/null 2>&1; then
      continue
    elif patch -d "$dir" -p1 --dry-run -s -f < "$p" >/dev/null 2>&1; then
      log "applying $(basename "$p")"
      patch -d "$dir" -p1 -s -f < "$p" || die "could not apply $p to $dir"
    else
      warn "$(basename "$p") does not apply to $dir (another LAMMPS version?): building without it"
    fi
  done
}

CXX_BIN=$(command -v "${CXX:-g++}")
KEY_INPUT=$(
  echo "rev=$SCRIPT_REV"
  echo "src=$SRC_ID"
  preset_files | while read -r p; do echo "preset=$(basename "$p")"; cat "$p"; done
  echo "python=$("$PY" -c 'import sys; print(sys.executable, sys.version, sys.base_prefix)')"
  echo "cxx=$CXX_BIN $("$CXX_BIN" --version | head -1)"
  echo "mpi=$(mpicxx -show 2>/dev/null || true) $(mpichversion 2>/dev/null | head -1 || true)"
  echo "cmake=$(cmake --version | head -1)"
  echo "venv=$VENV"
  printf 'arg=%s\n' "${EXTRA_CMAKE_ARGS[@]+"${EXTRA_CMAKE_ARGS[@]}"}"
  echo "patches=$(patches_id)"
)
KEY=$(sha256sum <<<"$KEY_INPUT" | cut -c1-12)
BUILD_DIR="$CACHE/build/${SRC_LABEL}-${KEY}"
STAMP="$BUILD_DIR/.mlanet-installed-$(sha256sum <<<"$VENV" | cut -c1-12)"

install_intact() {
  [[ -x "$VENV/bin/lmp" && -x "$VENV/bin/lmp.bin" ]] || return 1
  (cd / && env -u LD_LIBRARY_PATH "$PY" -c 'import lammps' 2>/dev/null) || return 1
}

# ----------------------------------------------------------------------------
# verification of an installed lmp
# ----------------------------------------------------------------------------
verify_install() {
  local help tmp out
  log "verifying $VENV/bin/lmp (no LD_LIBRARY_PATH, venv not activated)"
  if ldd "$VENV/bin/lmp.bin" 2>/dev/null | grep -q 'not found'; then
    ldd "$VENV/bin/lmp.bin" | grep 'not found' >&2
    die "lmp has unresolved shared libraries (RPATH problem)"
  fi
  help=$(cd / && env -u LD_LIBRARY_PATH -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME "$VENV/bin/lmp" -h) \
    || die "'$VENV/bin/lmp -h' failed"
  local pkgs
  pkgs=$(awk '/^Installed packages:/{f=1; next} f && /^List of/{exit} f' <<<"$help")
  for p in ML-IAP PYTHON; do
    grep -qw -- "$p" <<<"$pkgs" || die "package $p missing from 'lmp -h' installed packages"
  done
  local pair_styles
  pair_styles=$(awk '/^\* Pair styles:/{f=1; next} f && /^\* /{exit} f' <<<"$help")
  grep -qw mliap <<<"$pair_styles" || die "pair style mliap not listed by 'lmp -h'"
  if grep -qF 'dispersion/d3' <<<"$pair_styles"; then
    log "pair style dispersion/d3 (EXTRA-PAIR) available: the snippet's variable mlanet_dispersion adds DFT-D3"
  else
    log "note: no pair style dispersion/d3 (EXTRA-PAIR off): the snippet's variable mlanet_dispersion will stop with an error"
  fi
  log "lmp -h: installed packages: $(tr -s ' \n' ' ' <<<"$pkgs")"
  # embedded interpreter must see the venv's site-packages
  tmp=$(mktemp -d)
  cat > "$tmp/in.pycheck" <<'EOF'
python source here "import sys, numpy; print('MLANET_PYCHECK', sys.prefix, numpy.__version__)"
EOF
  out=$(cd "$tmp" && env -u LD_LIBRARY_PATH -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME \
        PATH=/usr/bin:/bin "$VENV/bin/lmp" -nocite -log none -screen none -echo none -in in.pycheck 2>&1) || true
  rm -rf "$tmp"
  grep -q "MLANET_PYCHECK $VENV " <<<"$out" || {
    printf '%s\n' "$out" >&2
    die "embedded Python in lmp does not use the venv $VENV"
  }
  log "embedded Python: $(grep MLANET_PYCHECK <<<"$out" | head -1)"
  (cd / && env -u LD_LIBRARY_PATH "$PY" -c 'import lammps, lammps.mliap; print("[build_lammps] python module lammps", lammps.__version__, "OK")') \
    || die "'import lammps' in $PY failed"
  # lammps.lammps() imports mpi4py when present (MPI build): warn if that is broken
  if (cd / && "$PY" -c 'import mpi4py' 2>/dev/null) && ! (cd / && "$PY" -c 'from mpi4py import MPI' 2>/dev/null); then
    warn "mpi4py is installed in $VENV but 'from mpi4py import MPI' fails ($(cd / && "$PY" -c 'from mpi4py import MPI' 2>&1 | tail -1));"
    warn "lammps.lammps() from Python will fail until fixed, e.g. $PY -m pip install --force-reinstall --no-binary mpi4py mpi4py (builds against the system mpich). lmp itself is unaffected."
  fi
}

# lmp wrapper: LAMMPS' embedded interpreter locates its prefix via `python3` on
# PATH (CPython's default program name), so an un-activated `.venv/bin/lmp`
# would run with the base interpreter's site-packages. The wrapper puts the venv
# first on PATH (as `activate` does) and execs the real binary, lmp.bin.
# It also keeps glibc from returning large freed blocks to the kernel (mmap and
# trim thresholds): the model allocates tensors of hundreds of MB every step, and
# re-faulting them made large systems ~2x slower (an existing GLIBC_TUNABLES wins).
# The setting is TUNABLES in mlanet_lammps/allocator.py (printed when run as a script).
write_lmp_wrapper() {
  local tunables
  tunables=$("$PY" "$SCRIPT_DIR/../mlanet_lammps/allocator.py") || die "cannot read the allocator setting from mlanet_lammps/allocator.py"
  if head -c4 "$VENV/bin/lmp" | grep -q 'ELF'; then
    mv -f "$VENV/bin/lmp" "$VENV/bin/lmp.bin"
  fi
  cat > "$VENV/bin/lmp" <<EOF
#!/bin/sh
# LAMMPS $SRC_LABEL wrapper written by mlanet_lammps cmake/build_lammps.sh:
# make the embedded Python interpreter use this virtual environment.
VIRTUAL_ENV='$VENV'
PATH="\$VIRTUAL_ENV/bin:\$PATH"
GLIBC_TUNABLES="\${GLIBC_TUNABLES-$tunables}"
export VIRTUAL_ENV PATH GLIBC_TUNABLES
exec "\$VIRTUAL_ENV/bin/lmp.bin" "\$@"
EOF
  chmod +x "$VENV/bin/lmp"
}

if [[ $FORCE == 0 && -f "$STAMP" ]] && install_intact; then
  log "LAMMPS already built and installed into $VENV (build $BUILD_DIR); nothing to do (use --force to rebuild)"
  write_lmp_wrapper
  verify_install
  log "done in $(( $(date +%s) - T_START )) s"
  exit 0
fi

# ----------------------------------------------------------------------------
# extract only what the build needs
# ----------------------------------------------------------------------------
wanted_pkgs() {
  printf '%s\n' "${BASE_PKGS[@]}"
  preset_files | xargs cat | sed -n -E 's/^[[:space:]]*set[[:space:]]*\([[:space:]]*PKG_([A-Za-z0-9_-]+)[[:space:]]+(ON|on|On|YES|yes|1|TRUE|true)\b.*/\1/p'
  printf '%s\n' "${EXTRA_CMAKE_ARGS[@]+"${EXTRA_CMAKE_ARGS[@]}"}" | sed -n -E 's/^-DPKG_([A-Za-z0-9_-]+)(:BOOL)?=(ON|on|YES|yes|1|TRUE|true)$/\1/p'
}

if [[ -z "$SRC_DIR" ]]; then
  SRC_DIR="$CACHE/src/lammps-${SRC_LABEL}"
  [[ "$SRC_ID" == "tarball:$LAMMPS_SHA256" ]] || SRC_DIR="$SRC_DIR-${SRC_ID:8:12}"
  if [[ "$(cat "$SRC_DIR/.mlanet-source" 2>/dev/null || true)" != "$SRC_ID" ]]; then
    rm -rf "$SRC_DIR"
  fi
  listing=""
  need=()
  for d in cmake python src/fmt src/nlohmann src/STUBS $(wanted_pkgs | sort -u | sed 's|^|src/|'); do
    [[ -e "$SRC_DIR/$d" ]] || need+=("$d")
  done
  [[ -f "$SRC_DIR/src/version.h" ]] || need+=(TOPLEVEL)
  if [[ -n "${PRESET##*kokkos*}" ]] || [[ -e "$SRC_DIR/lib/kokkos" ]]; then :; else need+=(lib/kokkos); fi
  if [[ ${#need[@]} -gt 0 ]]; then
    log "extracting from $(basename "$TARBALL") into $SRC_DIR: ${need[*]}"
    listing=$(tar tf "$TARBALL")
    rel=$(grep -m1 -E '(^|/)src/version\.h$' <<<"$listing" || true)
    [[ -n "$rel" ]] || die "$TARBALL does not contain src/version.h: not a LAMMPS source tarball?"
    prefix=${rel%src/version.h}                         # "" (Debian orig) or "lammps-xxx/"
    strip=$(tr -cd '/' <<<"$prefix" | wc -c)
    mkdir -p "$SRC_DIR"
    pats=()
    for d in "${need[@]}"; do
      [[ $d == TOPLEVEL ]] && continue
      if grep -q "^${prefix}${d}/" <<<"$listing"; then pats+=("${prefix}${d}/*")
      else
        case "$d" in
          lib/kokkos) warn "this source has no lib/kokkos (the Debian dfsg tarball strips it): the KOKKOS preset then needs -DKokkos_ROOT=<Kokkos install with CUDA> (EXTERNAL_KOKKOS) or the upstream tarball via --source" ;;
          src/*) log "note: ${d#src/} not in this LAMMPS source" ;;
          *) die "$d missing from $TARBALL" ;;
        esac
      fi
    done
    for extra in doc/lammps.1 LICENSE README examples/mliap/in.mliap.unified.lj.Ar examples/mliap/mliap_unified_lj_Ar.py; do
      grep -qx "${prefix}${extra}" <<<"$listing" && pats+=("${prefix}${extra}")
    done
    if [[ ${#pats[@]} -gt 0 ]]; then
      tar xf "$TARBALL" -C "$SRC_DIR" --strip-components="$strip" --wildcards "${pats[@]}"
    fi
    if [[ " ${need[*]} " == *" TOPLEVEL "* ]]; then
      # top-level src/*.cpp, *.h only (not the package sub-folders)
      tar xf "$TARBALL" -C "$SRC_DIR" --strip-components="$strip" --wildcards --no-wildcards-match-slash \
        "${prefix}src/*.cpp" "${prefix}src/*.h"
    fi
    # python/examples has symlinks into tools/ (not extracted) that break install.py
    rm -rf "$SRC_DIR/python/examples"
    # `make install` copies these folders; keep them empty (saves ~100 MB in the venv)
    mkdir -p "$SRC_DIR/bench" "$SRC_DIR/potentials" "$SRC_DIR/doc"
    [[ -f "$SRC_DIR/doc/lammps.1" ]] || : > "$SRC_DIR/doc/lammps.1"
    echo "$SRC_ID" > "$SRC_DIR/.mlanet-source"
    log "extracted ($(du -sh "$SRC_DIR" | cut -f1))"
  fi
fi

command -v patch >/dev/null || die "patch not found -> run: apt-get install -y patch"
apply_patches "$SRC_DIR"

# ----------------------------------------------------------------------------
# build-time Python requirement: Cython (for ML-IAP's Python coupling)
# ----------------------------------------------------------------------------
if [[ ! -x "$VENV/bin/cythonize" ]]; then
  log "Cython (build requirement of MLIAP_ENABLE_PYTHON) not in the venv: $PY -m pip install cython"
  "$PY" -m pip install cython || die "could not install Cython -> run: $PY -m pip install cython"
fi

# ----------------------------------------------------------------------------
# configure, build, install
# ----------------------------------------------------------------------------
log "build dir: $BUILD_DIR (key $KEY)"
mkdir -p "$BUILD_DIR"
printf '%s\n' "$KEY_INPUT" > "$BUILD_DIR/.mlanet-key-input"
T_BUILD=$(date +%s)
# compiler via $CXX (not -D) so that a preset may still force its own (nvcc_wrapper)
CXX="$CXX_BIN" cmake -S "$SRC_DIR/cmake" -B "$BUILD_DIR" -C "$PRESET" \
  -DPython_EXECUTABLE="$PY" \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DCMAKE_INSTALL_RPATH="$VENV/lib" \
  "${EXTRA_CMAKE_ARGS[@]+"${EXTRA_CMAKE_ARGS[@]}"}"
cmake --build "$BUILD_DIR" -j "$JOBS"
log "compiled in $(( $(date +%s) - T_BUILD )) s"
rm -f "$BUILD_DIR"/.mlanet-installed-*.tmp
# `make install`: lmp, liblammps.so, headers, cmake/pkgconfig files into $VENV
# (a previous lmp wrapper is replaced by the binary here; recreated below)
cmake --build "$BUILD_DIR" --target install

write_lmp_wrapper

# `make install-python`: builds a wheel of python/lammps (bundling liblammps.so)
# and pip-installs it. install.py uses `python` from PATH when VIRTUAL_ENV is set.
log "installing the 'lammps' Python module into $VENV (target install-python)"
if ! (cd "$BUILD_DIR" && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" \
      cmake --build . --target install-python) || \
   ! (cd / && "$PY" -c 'import lammps') ; then
  # install.py needs network access (it pip-installs build tools into a scratch
  # venv). Offline fallback: build the same package without isolation.
  warn "install-python failed; falling back to an offline pip install of python/ with liblammps.so"
  tmp=$(mktemp -d)
  cp -r "$SRC_DIR/python" "$tmp/python"
  cp "$BUILD_DIR/liblammps.so" "$tmp/python/lammps/"
  (cd "$tmp/python" && LAMMPS_VERSION_FILE="$SRC_DIR/src/version.h" LAMMPS_SHARED_LIB=liblammps.so \
     "$PY" -m pip install --no-deps --no-build-isolation --force-reinstall .) \
     || die "could not install the lammps Python module"
  rm -rf "$tmp"
fi

verify_install
: > "$STAMP"
log "LAMMPS installed into $VENV: $VENV/bin/lmp (wrapper) -> $VENV/bin/lmp.bin"
log "build + install time: $(( $(date +%s) - T_START )) s"
