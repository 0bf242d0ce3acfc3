"""MLANet interatomic potential: PyTorch model, training, ASE calculator and LAMMPS (ML-IAP unified) coupling."""

__version__ = "0.1.0"
