"""Bad input gives one clear error line naming file, frame and fix."""

import numpy as np
import pytest

from mlanet_lammps.data.batch import frame_to_graph
from mlanet_lammps.data.graph import build_graph
from mlanet_lammps.data.io import read_frames
from mlanet_lammps.errors import MLANetInputError
from tests.conftest import WATER


def write_frames(tmp_path, text, name="bad.extxyz"):
    path = tmp_path / name
    path.write_text(text)
    return path


def lines_of_water(n_frames=2):
    lines = WATER.read_text().splitlines(keepends=True)
    return lines[: n_frames * 194]


def assert_one_line(err, *words):
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_reads_real_frames():
    frames = read_frames(WATER)
    assert len(frames) == 40
    assert frames[0].forces.shape == (192, 3) and frames[0].energy < -29000


def test_missing_file(tmp_path):
    with pytest.raises(MLANetInputError) as err:
        read_frames(tmp_path / "nope.extxyz")
    assert_one_line(err, "not found", "Fix:")


def test_truncated_file(tmp_path):
    text = "".join(lines_of_water(2))
    path = write_frames(tmp_path, text[: len(text) - 3000])
    with pytest.raises(MLANetInputError) as err:
        read_frames(path)
    assert_one_line(err, "frame 1", "malformed or truncated", str(path))


def test_malformed_line(tmp_path):
    lines = lines_of_water(1)
    lines[5] = "O 1.0 abc 2.0 0.1 0.2 0.3\n"
    with pytest.raises(MLANetInputError) as err:
        read_frames(write_frames(tmp_path, "".join(lines)))
    assert_one_line(err, "frame 0", "cannot parse")


def test_empty_file(tmp_path):
    with pytest.raises(MLANetInputError) as err:
        read_frames(write_frames(tmp_path, ""))
    assert_one_line(err, "no frames")


def test_missing_energy_and_forces(tmp_path):
    lines = lines_of_water(1)
    lines[1] = lines[1].replace("energy=-29943.90625", "")
    path = write_frames(tmp_path, "".join(lines))
    with pytest.raises(MLANetInputError) as err:
        read_frames(path)
    assert_one_line(err, "frame 0", "no energy", "energy_weight: 0")
    assert read_frames(path, need_energy=False)[0].energy is None
    with pytest.raises(MLANetInputError) as err:
        read_frames(WATER, forces_key="force")
    assert_one_line(err, "no forces", "forces_weight: 0")


def test_nan_values(tmp_path):
    lines = lines_of_water(1)
    parts = lines[3].split()
    parts[4] = "nan"
    lines[3] = " ".join(parts) + "\n"
    with pytest.raises(MLANetInputError) as err:
        read_frames(write_frames(tmp_path, "".join(lines)))
    assert_one_line(err, "frame 0", "forces value(s) NaN")


def test_overlapping_atoms_across_periodic_boundary(tmp_path):
    lines = lines_of_water(1)
    first = lines[2].split()
    x = float(first[1]) + 12.444661140441895 - 0.05  # periodic image of atom 0, 0.05 Å away
    lines[3] = " ".join([lines[3].split()[0], f"{x:.8f}"] + first[2:]) + "\n"
    with pytest.raises(MLANetInputError) as err:
        read_frames(write_frames(tmp_path, "".join(lines)))
    assert_one_line(err, "frame 0", "atoms 0 and 1", "overlapping")


def test_unknown_element_at_evaluation():
    with pytest.raises(MLANetInputError) as err:
        read_frames(WATER, allowed_numbers=[1, 6])
    assert_one_line(err, "frame 0", "O unknown to the model", "retrain")
    frame = read_frames(WATER, index="0")[0]
    with pytest.raises(MLANetInputError) as err:
        frame_to_graph(frame, 5.0, [1, 6])
    assert_one_line(err, "O unknown")


def test_neighbor_list_matches_ase_in_small_triclinic_and_slab_cells():
    from ase.build import bulk, fcc111
    from ase.neighborlist import primitive_neighbor_list

    si = bulk("Si", "diamond", a=5.43)  # 2 atoms, cell much smaller than the cutoff
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
    slab.pbc = [True, True, False]
    for atoms in (si, slab):
        ei, shifts, vec = build_graph(atoms.positions, atoms.cell[:], atoms.pbc, 6.0)
        i, j, s = primitive_neighbor_list("ijS", atoms.pbc, atoms.cell[:], atoms.positions, 6.0)
        ours = sorted(zip(ei[0], ei[1], *shifts.astype(int).T))
        theirs = sorted(zip(i, j, *s.T))
        assert ours == theirs
        expected = atoms.positions[ei[1]] - atoms.positions[ei[0]] + shifts @ atoms.cell[:]
        np.testing.assert_allclose(vec, expected, atol=1e-12)


def labelled_copy(path, **labels):
    """The first bundled water frame written to `path` with its labels under the given names (info or arrays)."""
    import ase.io
    frame = read_frames(WATER, index="0")[0]
    atoms = frame.to_atoms()
    atoms.calc = None
    for name, value in labels.items():
        if np.shape(value) == (len(atoms), 3):
            atoms.arrays[name] = value
        else:
            atoms.info[name] = value
    ase.io.write(path, atoms, format="extxyz")
    return frame


def test_mace_reference_keys_are_read(tmp_path):
    """REF_energy / REF_forces / REF_stress (MACE's files) are read when the plain keys are absent."""
    stress = np.array([0.01, -0.02, 0.005, 0.001, -0.002, 0.003])
    path = tmp_path / "mace.extxyz"
    frame = labelled_copy(path, REF_energy=-123.25, REF_forces=np.arange(192 * 3.0).reshape(192, 3) / 1000,
                          REF_stress=stress)
    (read,) = read_frames(path, need_stress=True)
    assert read.energy == -123.25
    np.testing.assert_array_equal(read.forces, np.arange(192 * 3.0).reshape(192, 3) / 1000)
    np.testing.assert_allclose([read.stress[0, 0], read.stress[1, 2], read.stress[0, 1]], [0.01, 0.001, 0.003])
    np.testing.assert_array_equal(read.positions, frame.positions)


def test_virial_becomes_stress(tmp_path):
    path = tmp_path / "virial.extxyz"
    virial = np.array([[2.0, 0.1, 0.0], [0.1, -1.0, 0.3], [0.0, 0.3, 0.5]])
    frame = labelled_copy(path, REF_energy=-1.0, REF_forces=np.zeros((192, 3)), REF_virials=virial.reshape(-1))
    (read,) = read_frames(path, need_stress=True)
    np.testing.assert_allclose(read.stress, -virial / abs(np.linalg.det(frame.cell)), rtol=1e-12)


def test_stress_of_a_slab_is_refused_when_trained_and_dropped_otherwise(tmp_path):
    path = tmp_path / "slab.extxyz"
    frame = labelled_copy(path, energy=-1.0, forces=np.zeros((192, 3)), stress=np.full(6, 0.01))
    text = path.read_text().replace('pbc="T T T"', 'pbc="T T F"')
    path.write_text(text)
    with pytest.raises(MLANetInputError) as err:
        read_frames(path, need_stress=True)
    assert_one_line(err, "stress label on a frame that is not periodic in all three directions (pbc=TTF)",
                    "stress_weight: 0")
    (read,) = read_frames(path)
    assert read.stress is None and read.energy == -1.0 and read.num_atoms == frame.num_atoms


def test_stress_in_gpa_is_refused(tmp_path):
    path = tmp_path / "gpa.extxyz"
    labelled_copy(path, energy=-1.0, forces=np.zeros((192, 3)), stress=np.array([1.5, 1.2, 0.9, 0.0, 0.0, 0.1]))
    with pytest.raises(MLANetInputError) as err:
        read_frames(path, need_stress=True)
    assert_one_line(err, "stress component 1.5 is above 1 eV/Å^3", "looks like kbar, GPa or a virial",
                    "1 GPa = 0.0062415 eV/Å^3")


def test_ase_formats_globs_and_lists(tmp_path):
    """The same labelled frames from ASE .traj and .db files, a glob and a list read as from the extended XYZ."""
    import ase.io
    frames = read_frames(WATER, index=":3")
    structures = [f.to_atoms() for f in frames]
    ase.io.write(tmp_path / "a.traj", structures[:2])
    ase.io.write(tmp_path / "b.db", structures[2:])
    ase.io.write(tmp_path / "c.extxyz", structures[2:], format="extxyz")
    for spec in ([tmp_path / "a.traj", tmp_path / "b.db"], [str(tmp_path / "a.traj"), str(tmp_path / "c.*")]):
        read = read_frames(spec)
        assert len(read) == 3
        for a, b in zip(read, frames):
            assert a.energy == b.energy
            np.testing.assert_array_equal(a.forces, b.forces)
            np.testing.assert_array_equal(a.positions, b.positions)
    with pytest.raises(MLANetInputError) as err:
        read_frames(str(tmp_path / "*.nothing"))
    assert_one_line(err, "no file matches this pattern")
