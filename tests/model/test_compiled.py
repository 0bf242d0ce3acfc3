"""torch.compile inference (model/compiled.py) against eager PyTorch, float64: padded edges and the mirrored edge
order (one evaluation of the radial terms per pair) must change nothing."""

import numpy as np
import pytest
import torch

from mlanet_lammps.calculator import MLANetCalculator
from mlanet_lammps.data.batch import frame_to_graph
from mlanet_lammps.data.io import Frame
from mlanet_lammps.model.forces import forces_from_edge_grad
from mlanet_lammps.model.uncertainty import LLPRHead

from ..conftest import make_model


def results(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    return (atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(), atoms.get_potential_energies(),
            calc.get_property("forces_uncertainty", atoms))


def test_compiled_calculator_matches_eager(small_water):
    model = make_model([1, 8], l_max=1)
    features = torch.randn(40, model.config.readout_hidden, dtype=torch.float64)
    model.attach_uncertainty(LLPRHead.fit(features, torch.randint(0, 2, (40,)), 1e-2))
    eager = MLANetCalculator(model)
    compiled = MLANetCalculator(model, compile=True)
    stretched = small_water.copy()
    stretched.set_cell(small_water.cell * 1.04, scale_atoms=True)
    # the second structure has fewer edges than the first, so it runs on the first one's compiled shapes with more
    # padding edges (no second compilation)
    for atoms in (small_water, stretched):
        e0, f0, s0, ea0, u0 = results(eager, atoms)
        e1, f1, s1, ea1, u1 = results(compiled, atoms)
        np.testing.assert_allclose(u1, u0, rtol=1e-10)
        assert e1 == pytest.approx(e0, rel=1e-12)
        np.testing.assert_allclose(f1, f0, rtol=0, atol=1e-10)
        np.testing.assert_allclose(s1, s0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(ea1, ea0, rtol=0, atol=1e-11)
    # AOTAutograd's activation memory budget (model/compiled.py) is set for the compiled graphs' own compilation
    assert torch._functorch.config.activation_memory_budget == 1.0, "the process-wide setting must stay untouched"
    module = compiled.energy_grad()
    edges = frame_to_graph(Frame.from_atoms(stretched, source="atoms"), model.cutoff, [1, 8]).edge_index.shape[1]
    marks = module.model.sizes.marks
    assert marks["mirrored edges"] >= edges // 2 + 25, "the stretched box should run with padding edges"


@pytest.mark.parametrize("name", ["si_triclinic", "cu_slab", "ethanol", "water"])
def test_mirrored_edges_match_full_list(structures, name):
    """Eager float64: the mirrored pair list (several images of one atom in the Si cell, a slab, a molecule) gives
    the per-atom energies and forces of vesin's full list, with each pair's gradient on its first edge only."""
    atoms = structures[name]
    numbers = sorted(set(atoms.numbers.tolist()))
    model = make_model(numbers)
    frame = Frame.from_atoms(atoms, source=name)
    full = frame_to_graph(frame, model.cutoff, numbers)
    mirrored = frame_to_graph(frame, model.cutoff, numbers, mirrored=True)
    half = mirrored.edge_index.shape[1] // 2
    assert mirrored.edge_index.shape == full.edge_index.shape
    assert torch.equal(mirrored.edge_index[:, half:], mirrored.edge_index.flip(0)[:, :half])
    assert torch.equal(mirrored.edge_vec[half:], -mirrored.edge_vec[:half])
    forces = []
    for graph, flag in ((full, False), (mirrored, True)):
        vec = graph.edge_vec.clone().requires_grad_(True)
        atom_energy = model(vec, graph.species, graph.edge_index, mirrored=flag)
        grad, = torch.autograd.grad(atom_energy.sum(), vec)
        if flag:
            assert grad[half:].abs().max() == 0.0
        forces.append((atom_energy.detach(), forces_from_edge_grad(grad, graph.edge_index, len(atoms))))
    np.testing.assert_allclose(forces[1][0], forces[0][0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(forces[1][1], forces[0][1], rtol=0, atol=1e-11)
