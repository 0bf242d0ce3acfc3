# mlanet_lammps: KOKKOS + CUDA preset for NVIDIA GPU machines (untested in CI: no GPU there).
#
#   bash cmake/build_lammps.sh --venv .venv --preset cmake/lammps-kokkos-cuda.cmake
#   lmp -k on g 1 -sf kk -pk kokkos newton on neigh half -in in.lammps
#
# Everything from the CPU preset (ML-IAP + Python, PYTHON, MOLECULE, ...) plus the
# KOKKOS package with the CUDA backend. With KOKKOS, `pair_style mliap unified`
# becomes mliap/kk and hands device (CUDA) arrays to the Python model.
#
# Requirements: CUDA toolkit (nvcc) on PATH, a CUDA-capable MPI is optional.
#
# GPU architecture: Kokkos compiles for exactly one GPU architecture; the
# default below is Hopper (H100/H200, sm_90). To change it, pass e.g.
#   --cmake-arg -DKokkos_ARCH_HOPPER90=OFF --cmake-arg -DKokkos_ARCH_AMPERE80=ON
# Other names: Kokkos_ARCH_VOLTA70, _TURING75, _AMPERE80 (A100), _AMPERE86,
# _ADA89 (L40/RTX 40xx), _HOPPER90 (H100/H200), _BLACKWELL100 (B200),
# _BLACKWELL120. Host CPU architecture may be set as well, e.g. Kokkos_ARCH_NATIVE=ON.
#
# Kokkos library source: the Debian "dfsg" tarball that build_lammps.sh pins
# does NOT ship lib/kokkos (nor lib/kokkos/bin/nvcc_wrapper). This preset:
#   1. uses the bundled lib/kokkos + nvcc_wrapper when present (upstream release
#      tarball, e.g. --source lammps-stable_4Jul2026.tar.gz from GitHub);
#   2. otherwise uses an installed Kokkos with CUDA (EXTERNAL_KOKKOS) if
#      -DKokkos_ROOT=/path (or env Kokkos_ROOT) is given; the compiler is then
#      $Kokkos_ROOT/bin/nvcc_wrapper; Kokkos must be the version LAMMPS asks for;
#   3. otherwise stops with an explanation.

include(${CMAKE_CURRENT_LIST_DIR}/lammps-cpu.cmake)

set(PKG_KOKKOS ON CACHE BOOL "")
set(Kokkos_ENABLE_SERIAL ON CACHE BOOL "")
set(Kokkos_ENABLE_OPENMP OFF CACHE BOOL "")  # ON needs BUILD_OMP ON (it is) and more compile time
set(Kokkos_ENABLE_CUDA ON CACHE BOOL "")
set(Kokkos_ARCH_HOPPER90 ON CACHE BOOL "")   # <-- change to match your GPU (see above)
set(Kokkos_ENABLE_DEPRECATION_WARNINGS OFF CACHE BOOL "")
# KOKKOS (Kokkos >= 5) requires C++20
set(CMAKE_CXX_STANDARD 20 CACHE STRING "")
# double precision, legacy view layout: LAMMPS defaults, spelled out for clarity
set(KOKKOS_PREC double CACHE STRING "")
# FFTs on the GPU if KSPACE is switched on
set(FFT_KOKKOS CUFFT CACHE STRING "")

# --- which Kokkos / which compiler ------------------------------------------
# (in a -C script CMAKE_CURRENT_SOURCE_DIR is LAMMPS' cmake/ folder)
get_filename_component(_mlanet_nvcc_wrapper
  ${CMAKE_CURRENT_SOURCE_DIR}/../lib/kokkos/bin/nvcc_wrapper ABSOLUTE)
if(NOT Kokkos_ROOT AND DEFINED ENV{Kokkos_ROOT})
  set(Kokkos_ROOT $ENV{Kokkos_ROOT})
endif()
if(EXISTS ${_mlanet_nvcc_wrapper})
  set(CMAKE_CXX_COMPILER ${_mlanet_nvcc_wrapper} CACHE FILEPATH "" FORCE)
elseif(Kokkos_ROOT)
  set(EXTERNAL_KOKKOS ON CACHE BOOL "")
  set(Kokkos_ROOT ${Kokkos_ROOT} CACHE PATH "")
  set(CMAKE_CXX_COMPILER ${Kokkos_ROOT}/bin/nvcc_wrapper CACHE FILEPATH "" FORCE)
else()
  message(FATAL_ERROR
    "lammps-kokkos-cuda.cmake: this LAMMPS source has no lib/kokkos (the Debian dfsg "
    "tarball strips it). Use the upstream release tarball (build_lammps.sh --source "
    "lammps-stable_4Jul2026.tar.gz) or pass -DKokkos_ROOT=<Kokkos install with CUDA>.")
endif()
