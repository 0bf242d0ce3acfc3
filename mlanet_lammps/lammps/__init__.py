"""LAMMPS coupling: the ML-IAP unified model file (wrapper.py), its per-rank evaluator and ghost exchange, the
set-up checks and the exporter with its include snippet."""
