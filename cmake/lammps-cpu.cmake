# mlanet_lammps: lean CPU preset for LAMMPS (4 Jul 2026) with `pair_style mliap unified`.
#
# Use as a CMake initial-cache file:  cmake -C cmake/lammps-cpu.cmake <lammps>/cmake
# (cmake/build_lammps.sh does this for you).  Only packages needed to run an
# ML-IAP "unified" Python potential plus a few everyday extras are enabled, to
# keep compile time low.  Enable more packages by adding -DPKG_<NAME>=ON to the
# build script's --cmake-arg option or by copying this file.

set(CMAKE_BUILD_TYPE Release CACHE STRING "")

# --- build flavour -----------------------------------------------------------
set(BUILD_SHARED_LIBS ON CACHE BOOL "")   # liblammps.so: needed by the `lammps` Python module
set(BUILD_MPI ON CACHE BOOL "")           # MPI (mpich); `mpirun -np N lmp`
set(BUILD_OMP ON CACHE BOOL "")           # OpenMP compiler support
set(BUILD_TOOLS OFF CACHE BOOL "")
set(BUILD_LAMMPS_GUI OFF CACHE BOOL "")
set(BUILD_DOC OFF CACHE BOOL "")
set(LAMMPS_INSTALL_RPATH ON CACHE BOOL "") # installed lmp/liblammps need no LD_LIBRARY_PATH
set(CMAKE_INSTALL_LIBDIR lib CACHE PATH "")
set(DOWNLOAD_POTENTIALS OFF CACHE BOOL "") # no network access at configure time
set(ENABLE_TESTING OFF CACHE BOOL "")
set(WITH_SWIG OFF CACHE BOOL "")
# LAMMPS_EXCEPTIONS is no longer an option: C++ exceptions are always enabled
# in current LAMMPS (the library API reports errors via lammps_has_error()).

# optional external libraries we do not want to pick up by accident
set(WITH_JPEG OFF CACHE BOOL "")
set(WITH_PNG OFF CACHE BOOL "")
set(WITH_FFMPEG OFF CACHE BOOL "")
set(WITH_GZIP ON CACHE BOOL "")
set(WITH_CURL OFF CACHE BOOL "")
set(FFT KISS CACHE STRING "")              # only matters if KSPACE is switched on

# --- packages ----------------------------------------------------------------
set(PKG_ML-IAP ON CACHE BOOL "")
set(PKG_ML-SNAP ON CACHE BOOL "")          # hard dependency of ML-IAP
set(MLIAP_ENABLE_PYTHON ON CACHE BOOL "")  # `mliap model mliappy` and `mliap unified` (needs Cython)
set(PKG_PYTHON ON CACHE BOOL "")           # embedded Python interpreter
set(PKG_MOLECULE ON CACHE BOOL "")
set(PKG_EXTRA-FIX ON CACHE BOOL "")
set(PKG_EXTRA-COMPUTE ON CACHE BOOL "")
set(PKG_EXTRA-PAIR ON CACHE BOOL "")       # pair_style dispersion/d3 (DFT-D3 on top of MLANet via hybrid/overlay)
set(PKG_OPENMP ON CACHE BOOL "")           # /omp styles for classical reference potentials
# Not enabled (add if needed): KSPACE, MANYBODY, RIGID, REPLICA, ...
