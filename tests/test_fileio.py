"""Atomic writes: content replaced in one step, usual permissions, no temporary files left behind."""

import os
import stat

from mlanet_lammps.fileio import atomic_write_bytes


def test_atomic_write_replaces_content_with_umask_permissions(tmp_path):
    path = tmp_path / "sub" / "out.bin"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second")
    assert path.read_bytes() == b"second"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"]
