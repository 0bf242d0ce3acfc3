"""LAMMPS coupling: the scripted per-rank module, the ML-IAP unified wrapper and the exporter."""
