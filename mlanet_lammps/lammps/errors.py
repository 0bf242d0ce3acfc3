"""Errors of a LAMMPS run, raised on every MPI rank at once.

LAMMPS stops a run when compute_forces raises (error->one, which aborts every rank). A problem seen on one rank
only (an element the model does not know in part of the box, no GPU on one node) must still reach the user with
its message, not as a rank that hangs in the next collective call: each check runs locally, then the ranks agree.
"""

from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")


class MLANetLammpsError(RuntimeError):
    """A LAMMPS set-up problem: one line naming the problem and the fix, raised in compute_forces."""


def on_all_ranks(comm: Optional[Any], step: Callable[[], T]) -> T:
    """step() on every rank; if it raised on any rank, raise MLANetLammpsError with the first failing rank's message
    on all of them. step must not make collective calls itself (a rank that failed before one would leave the
    others waiting in it). comm: mpi4py communicator, None on one rank."""
    result, problem = None, None
    try:
        result = step()
    except Exception as err:  # noqa: BLE001 - any failure is reported on every rank
        problem = str(err) if isinstance(err, MLANetLammpsError) else f"{type(err).__name__}: {err}"
    if comm is not None:
        problems = comm.allgather(problem)
        failed = [rank for rank, p in enumerate(problems) if p is not None]
        if failed:
            prefix = f"MPI rank {failed[0]}" + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else "")
            raise MLANetLammpsError(f"{prefix}: {problems[failed[0]]}")
    elif problem is not None:
        raise MLANetLammpsError(problem)
    return result
