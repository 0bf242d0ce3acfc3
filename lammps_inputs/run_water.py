"""Drive the water input from Python with mpi4py, as `mpirun -np N python run_water.py` users expect.

    python run_water.py --model ../runs/water-demo/water                 # 1 rank
    mpirun -np 4 python run_water.py --model ../runs/water-demo/water    # 4 ranks (LAMMPS decomposes the box)

Any extra `--var NAME VALUE` pairs are passed to the input script (e.g. --var nve_steps 500).
"""

import argparse
from pathlib import Path

from lammps import lammps
from lammps.mliap import activate_mliappy
from mpi4py import MPI  # isort: split (MPI is initialised by mpi4py, before LAMMPS loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="exported model path without .mliap.pt")
    parser.add_argument("--input", default=str(Path(__file__).with_name("water_nvt_nve.in")))
    parser.add_argument("--var", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--log", default="log.python.lammps")
    args = parser.parse_args()

    comm = MPI.COMM_WORLD
    cmdargs = ["-log", args.log, "-var", "model", str(Path(args.model).resolve())]
    for name, value in args.var:
        cmdargs += ["-var", name, value]
    lmp = lammps(comm=comm, cmdargs=cmdargs)
    activate_mliappy(lmp)  # load LAMMPS' ML-IAP Python coupling into this interpreter
    lmp.command(f"shell cd {Path(args.input).resolve().parent}")
    lmp.file(str(Path(args.input).resolve()))
    pe, etotal = lmp.get_thermo("pe"), lmp.get_thermo("etotal")
    if comm.rank == 0:
        print(f"final potential energy {pe:.12f} eV, total energy {etotal:.12f} eV on {comm.size} rank(s)")
    lmp.close()


if __name__ == "__main__":
    main()
