"""A model file whose rank 1 fails inside the ghost exchange of its first evaluation, while rank 0 waits in that
exchange: the failure LAMMPS' error->all cannot report, since rank 0 never reaches it. Loaded by LAMMPS' embedded
Python in test_lammps_errors.py (the repository root on PYTHONPATH)."""

from mlanet_lammps.lammps.wrapper import MLANetMLIAP

MESSAGE = "rank 1 ran out of memory in the ghost exchange (injected by the test)"


def fail(src, dst, width):
    raise MemoryError(MESSAGE)


class FailsInExchangeOnRank1(MLANetMLIAP):
    def start(self, handle, comm, nlocal, ntotal, elems):
        evaluator = super().start(handle, comm, nlocal, ntotal, elems)
        if comm is not None and comm.Get_rank() == 1:
            refresh = evaluator.refresh_exchange

            def refresh_then_fail(ids, num_local):
                exchange = refresh(ids, num_local)
                exchange.forward_exchange = fail
                return exchange

            evaluator.refresh_exchange = refresh_then_fail
        return evaluator
