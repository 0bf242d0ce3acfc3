"""The compiled training evaluator (model/compiled_training.py) against the eager one, float64: the training loss
(energies, forces and stresses) and its gradients with respect to every weight must agree, with padding edges and
atoms in play."""

import numpy as np
import torch

from mlanet_lammps.data.batch import collate, frame_to_graph
from mlanet_lammps.data.io import Frame
from mlanet_lammps.model.compiled import traced_tensor_products
from mlanet_lammps.model.compiled_training import CompiledTrainingGradient
from mlanet_lammps.model.forces import EnergyAndEdgeGradient
from mlanet_lammps.predict import predict_with
from mlanet_lammps.train.loop import loss_sums

from ..conftest import make_model


def labelled_batch(structures, rng):
    """The structures as one batch with random energy, force and stress labels."""
    frames = []
    for atoms in structures:
        stress = None
        if atoms.pbc.all():
            stress = rng.normal(size=(3, 3)) * 0.01
            stress = stress + stress.T
        frames.append(Frame.from_atoms(atoms, source="test", energy=float(rng.normal()),
                                       forces=rng.normal(size=(len(atoms), 3)), stress=stress))
    return collate([frame_to_graph(f, 4.0, [1, 6, 8]) for f in frames])


def loss_and_grads(evaluator, model, batch):
    pred = predict_with(evaluator, batch)
    sums, counts = loss_sums(pred, batch, "mse", 0.01)
    loss = (sums / counts[:3]).sum()
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return loss.detach(), pred, grads


def test_compiled_training_matches_eager(small_water, structures):
    with traced_tensor_products():
        model = make_model([1, 6, 8], l_max=1).train()
    eager = EnergyAndEdgeGradient(model, create_graph=True)
    compiled = CompiledTrainingGradient(model)
    rng = np.random.default_rng(0)
    stretched = small_water.copy()
    stretched.set_cell(small_water.cell * 1.04, scale_atoms=True)
    # the second batch has fewer edges and atoms than the first: it runs on the first one's compiled graph, with
    # padding edges and padding atoms
    for structure in ([small_water, structures["ethanol"]], [stretched]):
        batch = labelled_batch(structure, rng)
        loss0, pred0, grads0 = loss_and_grads(eager, model, batch)
        loss1, pred1, grads1 = loss_and_grads(compiled, model, batch)
        assert float(loss1) == float(loss0) or abs(float(loss1 / loss0) - 1) < 1e-12
        np.testing.assert_allclose(pred1.forces.detach(), pred0.forces.detach(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(pred1.stress.detach(), pred0.stress.detach(), rtol=0, atol=1e-12)
        for (name, _), g0, g1 in zip(model.named_parameters(), grads0, grads1):
            scale = float(g0.abs().max()) + 1e-300
            assert float((g1 - g0).abs().max()) <= 1e-10 * scale, f"weight gradient of {name}"
    assert len(compiled.graphs) == 1, "the smaller batch must run on the padded graph of the first"
    assert compiled.sizes.marks["training edges"] > batch.edge_index.shape[1]
