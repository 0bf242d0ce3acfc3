"""`MLIAPUnified` subclass that LAMMPS' `pair_style mliap unified FILE 1` loads: LAMMPS pairs -> MLANet -> fij.

LAMMPS calls `compute_forces(data)` with the (ghost-augmented) pair list of one MPI rank: data.rij [P,3] = x_j - x_i
(Å), data.pair_i / data.pair_j [P] atom indices (locals first, then ghosts), data.elems [ntotal] element index from
`pair_coeff`, data.nlocal, data.ntotal. We set data.energy (sum of E_i over local atoms, eV), data.eatoms (E_i of
the list atoms) and call data.update_pair_forces(fij) with fij = dE/d rij (eV/Å); LAMMPS adds fij to atom i,
subtracts it from j, tallies the virial and reverse-communicates ghost forces.
"""

import io
import os
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from ase.data import chemical_symbols

from .ghosts import short_ghost_shell
from .exchange import GhostExchange, exchanged_energy_and_forces
from .images import atom_ids, expect_handle, fold_images, ghost_owners
from .resources import auto_max_pairs, local_rank, ranks_sharing

try:
    from lammps.mliap.mliap_unified_abc import MLIAPUnified
except ImportError:  # exporting on a machine without the LAMMPS Python module: LAMMPS only reads these attributes
    class MLIAPUnified:  # type: ignore[no-redef]
        def __init__(self, interface=None, element_types=None, ndescriptors=None, nparams=None, rcutfac=None):
            self.interface, self.element_types = interface, element_types
            self.ndescriptors, self.nparams, self.rcutfac = ndescriptors, nparams, rcutfac

DTYPES = {"float64": torch.float64, "float32": torch.float32}


DEFAULT_SKIN = 1.0  # Å, the neighbour skin the exported snippet sets unless told otherwise


def required_comm_cutoff(cutoff: float, num_layers: int, skin: float = DEFAULT_SKIN) -> float:
    """Ghost-shell thickness (Å) a rank needs: num_layers x r_cut + skin."""
    return num_layers * cutoff + skin


class MLANetLammpsError(RuntimeError):
    """A LAMMPS set-up problem, reported by LAMMPS as a Python error in compute_forces."""


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto'; plain 'cuda'/'auto' put each rank on GPU local_rank % n_gpus."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MLANetLammpsError("model exported with --device cuda but this LAMMPS process sees no CUDA GPU; "
                                    "re-export with --device cpu (or auto)")
        if device == "cuda":
            device = f"cuda:{local_rank() % torch.cuda.device_count()}"
    return torch.device(device)


class MLANetMLIAP(MLIAPUnified):
    """MLANet for `pair_style mliap unified FILE 1` (needs `newton on` and comm_modify cutoff >= layers x r_cut + skin).

    Args:
        scripted: TorchScript `LammpsMLANet`.
        elements: chemical symbols of the model's species, in species-index order.
        cutoff: model cutoff r_cut in Å (LAMMPS uses 2 * rcutfac = r_cut).
        num_layers: message-passing layers (receptive field num_layers x r_cut).
        dtype: 'float64' or 'float32' (dtype of the scripted weights).
        device: 'cpu', 'cuda', 'cuda:N' or 'auto'.
        metadata: provenance (package version, training data hash, metrics, ...).
        prune: evaluate deep layers only near local atoms (exact; see LammpsMLANet).
        bytes_per_pair: estimated autograd memory of one (pair, layer) evaluation (bytes; see resources).
        max_pairs: (pair, layer) evaluations per chunk (see LammpsMLANet); None: from the free memory of the rank's
            device at the first step; 0: never chunk. The environment variable MLANET_MAX_PAIRS overrides it.
        comm_cutoff: the comm_modify cutoff the exported snippet sets (Å), advised when the ghost shell is too thin.

    `pairs_evaluated` counts the (pair, layer) evaluations of this rank since loading and `pairs_unpruned` what
    they would have been without pruning (read by benchmarks).
    """

    def __init__(self, scripted: torch.jit.ScriptModule, elements: List[str], cutoff: float, num_layers: int,
                 dtype: str, device: str = "auto", metadata: Optional[Dict[str, Any]] = None, prune: bool = True,
                 bytes_per_pair: float = 0.0, max_pairs: Optional[int] = None, comm_cutoff: Optional[float] = None):
        # every element is offered to pair_coeff so that a type the model does not know gets our clear error
        offered = list(elements) + [s for s in chemical_symbols[1:] if s not in elements]
        super().__init__(None, element_types=offered, ndescriptors=1, nparams=1, rcutfac=0.5 * float(cutoff))
        self.elements = list(elements)
        self.cutoff, self.num_layers = float(cutoff), int(num_layers)
        self.dtype, self.device, self.prune = dtype, device, prune
        self.bytes_per_pair, self.max_pairs = float(bytes_per_pair), max_pairs
        if comm_cutoff is None:
            comm_cutoff = required_comm_cutoff(self.cutoff, self.num_layers)
        self.comm_cutoff = float(comm_cutoff)
        self.metadata = dict(metadata or {})
        buf = io.BytesIO()
        torch.jit.save(scripted, buf)
        self.model_bytes = buf.getvalue()
        self._module: Optional[torch.jit.ScriptModule] = None
        self.pairs_evaluated = 0
        self.pairs_unpruned = 0

    # LAMMPS sets `interface` when it connects the model to a pair style; the snippet's `python mlanet_attach invoke`
    # that follows hands over the instance (images.py), and a handle from an earlier connection is dropped
    @property
    def interface(self):
        return self.__dict__.get("_interface")

    @interface.setter
    def interface(self, value) -> None:
        self.__dict__["_interface"] = value
        self.__dict__["lammps_handle"] = None
        if value is not None:
            expect_handle(self)

    # TorchScript modules do not pickle: keep the serialised bytes, load lazily on the device of this rank
    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("interface", None)  # files pickled before `interface` became a property
        for name in ("_comm", "_comm_of", "_exchange_plan", "_exchange_key"):  # this process's MPI state
            state.pop(name, None)
        state.update(_interface=None, lammps_handle=None, _module=None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)

    def module(self) -> torch.jit.ScriptModule:
        if self._module is None:
            device = resolve_device(self.device)
            module = torch.jit.load(io.BytesIO(self.model_bytes), map_location=device)
            found = {p.dtype for p in module.parameters()}
            if found != {DTYPES[self.dtype]}:
                raise MLANetLammpsError(f"model file declares {self.dtype} but its weights are "
                                        f"{sorted(map(str, found))}: the file is inconsistent; re-export it with "
                                        "mlanet-export --dtype")
            network = (float(module.energy_grad.model.cutoff), int(module.num_layers))
            if network != (self.cutoff, self.num_layers):
                declared = f"r_cut {self.cutoff:g} Å and {self.num_layers} layers"
                raise MLANetLammpsError(f"model file declares {declared} but its network has r_cut {network[0]:g} Å "
                                        f"and {network[1]} layers: the file is inconsistent (LAMMPS would use the "
                                        "wrong cutoff); re-export it with mlanet-export")
            self._module, self._torch_device = module.eval(), device
            self._chunk_pairs = self.chunk_pairs(device)
            # TorchScript's optimising (profiling) executor made 1,536-atom energy + force calls 12-16% slower with
            # 1.6-1.9x the peak memory on the CPU, and LAMMPS steps 4.6-5x slower on an H200; MLANET_JIT_OPTIMIZE=1
            # turns it back on
            self._jit_optimize = os.environ.get("MLANET_JIT_OPTIMIZE", "0") == "1"
            self._check_ghosts = os.environ.get("MLANET_ALLOW_SHORT_GHOSTS", "0") != "1"
            self._fold_images = os.environ.get("MLANET_GHOST_IMAGES", "1") != "0"
            # layer-by-layer evaluation with ghost features from their owners (exchange.py); files exported before
            # the model had stages (edge_features, ...) and --no-prune exports run the whole module instead
            self._exchange = (os.environ.get("MLANET_GHOST_EXCHANGE", "1") != "0" and self.prune
                              and hasattr(module.energy_grad.model, "interaction"))
        return self._module

    def check_ghost_shell(self, rij: np.ndarray, pair_i: np.ndarray, pair_j: np.ndarray, nlocal: int,
                          ntotal: int) -> None:
        """First call with pairs: stop with a clear error if the ghosts do not reach num_layers x r_cut (comm_modify
        cutoff too small), judged from the pair list (rij [P,3] Å, pair_i/pair_j [P]; see ghosts.py)."""
        comm = self.__dict__.get("comm_cutoff") or required_comm_cutoff(self.cutoff, self.num_layers)  # older files lack it
        problem = short_ghost_shell(rij, pair_i, pair_j, nlocal, ntotal, self.num_layers, self.cutoff, comm)
        if problem:
            raise MLANetLammpsError(problem)

    def chunk_pairs(self, device: torch.device) -> Optional[int]:
        """max_pairs argument of the scripted module: MLANET_MAX_PAIRS, else max_pairs, else from free memory;
        None for files exported before chunking existed (their module takes no such argument)."""
        if "bytes_per_pair" not in self.__dict__:
            return None
        env = os.environ.get("MLANET_MAX_PAIRS", "").strip()
        if env and env != "auto":
            if not env.isdigit():
                raise MLANetLammpsError(f"MLANET_MAX_PAIRS={env!r} is neither auto nor a whole number; set it to the "
                                        "(pair, layer) evaluations per chunk, 0 to never chunk, or auto")
            return int(env)
        if (self.max_pairs is not None and env != "auto") or self.bytes_per_pair <= 0:
            return int(self.max_pairs or 0)
        return auto_max_pairs(device, self.bytes_per_pair, ranks_sharing(device, self.device in ("cuda", "auto")))

    def compute_descriptors(self, data):
        pass

    def compute_gradients(self, data):
        pass

    def species(self, elems: np.ndarray) -> torch.Tensor:
        """LAMMPS element indices (from pair_coeff) -> model species; unknown/NULL types are an error."""
        if elems.size and (elems.min() < 0 or elems.max() >= len(self.elements)):
            bad = sorted({int(e) for e in elems if e < 0 or e >= len(self.elements)})
            names = ", ".join("NULL" if e < 0 else self.element_types[e] for e in bad)
            raise MLANetLammpsError(f"pair_coeff maps LAMMPS atom types to {names}, which this MLANet model does not "
                                    f"know (it knows {' '.join(self.elements)}); fix pair_coeff * * so every type maps "
                                    "to one of these elements")
        return torch.from_numpy(elems.astype(np.int64))

    def communicator(self, handle: Any) -> Any:
        """mpi4py communicator of the calling instance when it has several ranks, else None (the same on all ranks)."""
        if self.__dict__.get("_comm_of") is not handle:
            comm = handle.get_mpi_comm()
            self._comm = comm if comm is not None and comm.Get_size() > 1 else None
            self._comm_of, self._exchange_key = handle, None
        return self._comm

    def exchange(self, comm: Any, tag: Optional[np.ndarray], nlocal: int, ghosts: np.ndarray
                 ) -> Optional[GhostExchange]:
        """The ghost exchange for this step (exchange.py), or None on every rank if some rank lacks atom IDs.
        Collective; rebuilt when the atoms or the needed ghosts change (after reneighbouring)."""
        key = None if tag is None else (tag[:nlocal].copy(), tag[ghosts])
        old = self.__dict__.get("_exchange_key")
        same = key is not None and old is not None and all(np.array_equal(a, b) for a, b in zip(key, old))
        refused, changed = comm.allreduce(np.array([key is None, not same], dtype=np.int64))
        if refused:
            self._exchange_plan = self._exchange_key = None
            return None
        if changed:
            if old is None and comm.Get_rank() == 0:
                print(f"mlanet_lammps: {comm.Get_size()} MPI ranks exchange ghost-atom features between layers",
                      flush=True)
            self._exchange_plan, self._exchange_key = GhostExchange(comm, key[0], key[1], self._torch_device), key
        return self._exchange_plan

    def compute_forces(self, data):
        module = self.module()
        device, dtype = self._torch_device, DTYPES[self.dtype]
        nlocal, npairs, nlist, ntotal = int(data.nlocal), int(data.npairs), int(data.nlistatoms), int(data.ntotal)
        species = self.species(np.asarray(data.elems)).to(device)
        if npairs > 0:
            rij_np = np.array(data.rij, dtype=np.float64)
            pi_np, pj_np = data.pair_i.astype(np.int64), data.pair_j.astype(np.int64)
            if self._check_ghosts:  # the first step with pairs
                self._check_ghosts = False
                self.check_ghost_shell(rij_np, pi_np, pj_np, nlocal, ntotal)
        else:
            rij_np, pi_np, pj_np = np.zeros((0, 3)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        handle = self.__dict__.get("lammps_handle") if self._fold_images else None
        tag = atom_ids(handle, nlocal, ntotal) if handle is not None else None
        # pairs to evaluate: on several ranks, those centred on local atoms, layer by layer with ghost features
        # from their owners (exchange.py); on one rank (the whole scripted module is faster there) all but those
        # centred on image ghosts (images.py); without atom IDs, all. The others get fij = 0.
        plan, kept = None, None
        comm = self.communicator(handle) if handle is not None and self._exchange else None
        if comm is not None:
            local_pairs = np.flatnonzero(pi_np < nlocal)
            ghosts = np.unique(pj_np[local_pairs][pj_np[local_pairs] >= nlocal])
            plan = self.exchange(comm, tag, nlocal, ghosts)
        if plan is not None:
            kept = local_pairs
            pi_np, pj_np = pi_np[kept], pj_np[kept]
            pj_np = np.where(pj_np < nlocal, pj_np, nlocal + np.searchsorted(ghosts, pj_np))
            species = species[torch.from_numpy(np.concatenate([np.arange(nlocal), ghosts])).to(device)]
        elif tag is not None:
            kept, pj_np = fold_images(pi_np, pj_np, ghost_owners(tag, nlocal))
            pi_np = pi_np[kept]
        rij = torch.from_numpy(rij_np if kept is None else rij_np[kept]).to(device=device, dtype=dtype)
        pair_i, pair_j = torch.from_numpy(pi_np).to(device), torch.from_numpy(pj_np).to(device)
        with torch.jit.optimized_execution(self._jit_optimize):
            if plan is not None:
                local_energy, fij = exchanged_energy_and_forces(module.energy_grad.model, plan, rij, pair_i, pair_j,
                                                                species, nlocal, self._chunk_pairs or 0)
                energy = torch.cat([local_energy, local_energy.new_zeros(ntotal - nlocal)])
                evaluated = self.num_layers * len(pi_np)
            elif self._chunk_pairs is None:
                energy, fij, evaluated = module(rij, pair_i, pair_j, species, nlocal, self.prune)
            else:
                energy, fij, evaluated = module(rij, pair_i, pair_j, species, nlocal, self.prune, self._chunk_pairs)
        e = energy.detach().to("cpu", torch.float64).numpy()
        data.energy = float(e[:nlocal].sum())
        if nlist > 0:
            data.eatoms = np.ascontiguousarray(e[np.asarray(data.iatoms)[:nlist]])
        if npairs > 0:
            fij_np = fij.detach().to("cpu", torch.float64).numpy()
            if kept is not None:
                fij_np, evaluated_fij = np.zeros((npairs, 3)), fij_np
                fij_np[kept] = evaluated_fij
            data.update_pair_forces(np.ascontiguousarray(fij_np))
        self.pairs_evaluated += evaluated
        self.pairs_unpruned += self.num_layers * npairs
