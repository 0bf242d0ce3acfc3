"""Errors of a LAMMPS run, raised on every MPI rank at once.

LAMMPS reports a Python error in compute_forces with error->all, which every rank must reach. A problem seen on one
rank only (an element the model does not know in part of the box, no GPU on one node) must still reach the user
with its message, not as a rank that hangs in the next collective call. Two guards:

- on_all_ranks: for steps without collective calls (reading and checking the input, building the model): each rank
  runs the step, then the ranks agree on the first failure and all raise it.
- abort_on_failure: for the evaluation, whose ghost exchange is collective: a rank that fails there cannot tell
  which exchange the others wait in, so it prints its error and aborts every rank (MPI_Abort, as LAMMPS' own
  error->one does).
"""

import sys
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


def abort_on_failure(comm: Optional[Any], step: Callable[[], T]) -> T:
    """step(), which may make collective calls; on several ranks, a failure prints 'ERROR on MPI rank r: ...' to
    stdout and stderr and aborts every rank (MPI_Abort), since the other ranks may be waiting in a collective call this
    rank will not reach. On one rank (comm None) the error is raised as usual."""
    if comm is None:
        return step()
    try:
        return step()
    except Exception as err:  # noqa: BLE001 - any failure must stop every rank
        message = f"ERROR on MPI rank {comm.Get_rank()}: MLANet: {type(err).__name__}: {err}"
        for stream in (sys.stdout, sys.stderr):
            print(message, file=stream, flush=True)
        comm.Abort(1)
        raise  # not reached: Abort ends the process
