"""CHTs: Cannistraci-Hebb training, soft rule — gradient-free regrowth by link prediction.

Zhang, Zhao, Liao, Wu, Michieli & Cannistraci 2025, "Brain-inspired sparse training in MLP and
Transformers with network science modeling via Cannistraci-Hebb soft rule" (CHTs; CHT: Zhang et
al., ICLR 2024). The rules below follow the authors' code (github.com/biomedical-cybernetics/
Cannistraci-Hebb-training, ``mlp_and_cnn/dst_scheduler.py``: ``weight_magnitude_soft`` removal,
``--chain_removal``, ``CH2_L3n_soft`` regrowth). Each layer is a bipartite graph (outputs x
inputs); a new link is predicted where many length-3 paths join two nodes through intermediate
nodes with few links outside the local community. The scores are sparse-matrix products over the
live connections, which is why this rule fits a truly sparse engine.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..sparse import SparseLinear
from ..sparse.topology import csr_of_keys, keys_from_csr, row_of_each, sample_absent_csr
from ..utils import check_random_state
from .algorithm import TopologyAlgorithm
from .rewire import install_keys
from .rules import MagnitudeDrop, RandomGrow
from .schedule import Schedule

FALLBACK_EPS = 1e-5  # the authors' weight for every absent position when too few have a positive score


def _pattern(row_ptr, col_idx, n_in, keep=None) -> sp.csr_matrix:
    """The binary (out x in) adjacency of a CSR pattern (only ``keep``-ed connections if given)."""
    row_ptr = np.asarray(row_ptr, dtype=np.int64)
    n_out = row_ptr.size - 1
    if keep is None:
        data = np.ones(col_idx.size)
        return sp.csr_matrix((data, np.asarray(col_idx), row_ptr), shape=(n_out, n_in))
    rows = row_of_each(row_ptr)[keep]
    return sp.csr_matrix((np.ones(rows.size), (rows, np.asarray(col_idx)[keep])), shape=(n_out, n_in))


def _ch2_weights(paths2: sp.csr_matrix, degree: np.ndarray, middle: str) -> sp.csr_matrix:
    """CH2 node weight of every pair joined by length-2 paths: ``(1 + cn) / max(1, deg(v) - cn)``.

    ``paths2[u, v] = cn``, the common neighbours of u and v; v is the pair's node next to the
    candidate link's far end (``middle="col"``: the column index, ``"row"``: the row index), and
    ``deg(v) - cn`` counts its links leaving the local community (the authors' ``elcl``), which
    CH2 penalises.
    """
    paths2 = paths2.tocsr()
    cn = paths2.data
    v = paths2.indices if middle == "col" else row_of_each(paths2.indptr)
    data = (1.0 + cn) / np.maximum(1.0, degree[v] - cn)
    return sp.csr_matrix((data, paths2.indices, paths2.indptr), shape=paths2.shape)


class CH2L3n:
    """Node-based CH2-L3n scores of a layer's absent links, computed in row blocks.

    ``score = S_out @ M + M @ S_in.T`` with ``M`` the binary layer, ``S_out`` the CH2 weights of
    output pairs (from ``M @ M.T``) and ``S_in`` those of input pairs (from ``M.T @ M``): the sum
    over the length-3 paths ``u - s - v - t`` of the weight of their middle pair, from both ends
    (the authors' GPU formulation). Only pairs reachable by a length-3 path have a score, so each
    block is a sparse matrix over those candidates; ``S_in`` (in x in) is built once, ``S_out`` one
    block of rows at a time, and the two terms are one product ``[S_out | M] @ [M ; S_in.T]``.
    Memory: nnz(M.T @ M) + one block; never a dense (out x in) array.
    """

    def __init__(self, adjacency: sp.csr_matrix, block_elements: int = 1 << 22):
        self.M = adjacency.tocsr()
        self.M.sort_indices()
        self.deg_out = np.asarray(self.M.sum(axis=1)).ravel()
        self.deg_in = np.asarray(self.M.sum(axis=0)).ravel()
        self.MT = self.M.T.tocsr()
        # M.T @ M is symmetric, so the transposed input-pair weights read the degree of the row
        S_in_T = _ch2_weights(self.MT @ self.M, self.deg_in, middle="row")
        # both terms in one product per block: [S_out | M_rows] @ [M ; S_in_T]
        self._right = sp.vstack([self.M, S_in_T], format="csr")
        n_out, n_in = self.M.shape
        self.rows_per_block = max(1, int(block_elements) // max(1, n_in))
        self._whole = None

    def block(self, r0: int, r1: int) -> sp.csr_matrix:
        """Scores of rows ``r0:r1`` at absent positions (present links removed), CSR."""
        M_rows = self.M[r0:r1]
        S_out = _ch2_weights(M_rows @ self.MT, self.deg_out, middle="col")
        scores = (sp.hstack([S_out, M_rows], format="csr") @ self._right).tocsr()
        scores = scores - scores.multiply(M_rows)  # present links are not candidates
        scores.eliminate_zeros()
        return scores

    def blocks(self):
        """(r0, r1, scores of rows r0:r1) for every block; a layer that fits one block is scored once."""
        n_out = self.M.shape[0]
        if self.rows_per_block >= n_out:
            if self._whole is None:
                self._whole = self.block(0, n_out)
            yield 0, n_out, self._whole
            return
        for r0 in range(0, n_out, self.rows_per_block):
            r1 = min(n_out, r0 + self.rows_per_block)
            yield r0, r1, self.block(r0, r1)


def ch2_l3n_scores(adjacency: sp.spmatrix) -> sp.csr_matrix:
    """All CH2-L3n scores of a (small) layer's absent links as one sparse (out x in) matrix."""
    scorer = CH2L3n(sp.csr_matrix(adjacency), block_elements=1 << 62)
    return scorer.block(0, adjacency.shape[0])


def soft_keep(magnitude: np.ndarray, n_keep: int, temperature: float, rng) -> np.ndarray:
    """Boolean mask of ``n_keep`` connections drawn without replacement with P ∝ |w| ** temperature.

    Exponential keys (Efraimidis & Spirakis): the ``n_keep`` smallest ``E_i / |w_i|**T`` are exactly
    a sequential weighted draw without replacement (``torch.multinomial(p, n, replacement=False)``
    in the authors' code), in O(nnz log nnz) without a loop. A zero weight has probability 0 (key
    +inf): zeros are removed before anything else and, if some must stay, the first stored go first.
    """
    n = magnitude.size
    keep = np.zeros(n, dtype=bool)
    if n_keep <= 0:
        return keep
    log_key = np.log(rng.standard_exponential(n))
    if temperature > 0:
        with np.errstate(divide="ignore"):
            log_key -= temperature * np.log(magnitude.astype(np.float64))
    keep[np.lexsort((-np.arange(n), log_key))[:n_keep]] = True
    return keep


def sample_growth(scorer: CH2L3n, n: int, rng, eps: float = FALLBACK_EPS) -> np.ndarray:
    """Keys of ``n`` absent positions drawn without replacement with P ∝ CH2-L3n score.

    As in the authors' code, when fewer than ``n`` absent positions have a positive score every
    absent position's weight is raised by ``eps``, so the rest come (mostly) uniformly from the
    zero-scored ones. Exponential keys again: the scored candidates stream through block by block
    keeping the ``n`` smallest keys; the zero-scored positions (their number ``K`` known, their
    identity not needed) enter through the ``n`` smallest of ``K`` exponential keys, drawn in order
    (Rényi's representation), and only those taken are then placed uniformly among them.
    """
    n_out, n_in = scorer.M.shape
    present = scorer.M.nnz
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    best_keys = np.empty(0, dtype=np.int64)
    best_plain = np.empty(0)  # E / s
    best_eps = np.empty(0)  # E / (s + eps), used only if fewer than n candidates are scored
    n_positive = 0
    for r0, r1, block in scorer.blocks():
        if block.nnz == 0:
            continue
        rows = row_of_each(block.indptr) + r0
        e = rng.standard_exponential(block.nnz)
        n_positive += block.nnz
        best_keys = np.concatenate([best_keys, rows * n_in + block.indices.astype(np.int64)])
        best_plain = np.concatenate([best_plain, e / block.data])
        best_eps = np.concatenate([best_eps, e / (block.data + eps)])
        if best_keys.size > n:  # then n_positive >= n: only the plain keys' n smallest matter
            hold = np.argpartition(best_plain, n - 1)[:n]
            best_keys, best_plain, best_eps = best_keys[hold], best_plain[hold], best_eps[hold]
    if n_positive >= n:
        return np.sort(best_keys[np.argpartition(best_plain, n - 1)[:n]])
    # fallback: every scored candidate is held (n_positive < n); the zero-scored absent positions
    n_zero = n_out * n_in - present - n_positive
    m = min(n, n_zero)
    zero_keys = np.cumsum(rng.standard_exponential(m) / (n_zero - np.arange(m))) / eps
    all_keys = np.concatenate([best_eps, zero_keys])
    taken = np.argsort(all_keys, kind="stable")[:n]
    from_scored = best_keys[taken[taken < best_keys.size]]
    n_from_zero = int((taken >= best_keys.size).sum())
    if n_from_zero:
        occupied = np.union1d(keys_from_csr(scorer.M.indptr.astype(np.int64), scorer.M.indices, n_in), best_keys)
        ptr, cols = csr_of_keys(occupied, n_out, n_in)
        z_ptr, z_col = sample_absent_csr(ptr, cols, n_in, n_from_zero, rng)
        from_zero = keys_from_csr(z_ptr, z_col, n_in)
        return np.sort(np.concatenate([from_scored, from_zero]))
    return np.sort(from_scored)


class CHTs(TopologyAlgorithm):
    """CHTs (Zhang et al. 2025): soft magnitude removal, regrowth sampled ∝ CH2-L3n link-prediction score.

    Per update, with ``n = round(zeta * nnz)`` per layer:

    1. *Removal.* Keep ``nnz - n`` connections drawn without replacement with P ∝ |w| ** T (soft;
       ``soft_removal=False``: the largest |w|, first stored lose ties). ``T`` rises linearly
       from ``temperature_start`` to ``temperature_end`` over the updates up to ``end`` (the
       authors' ``1 + 2 t / T_end``; constant ``temperature_start`` when ``end`` is None).
    2. *Chain removal* (``chain_removal=True``, as the authors run CHTs): from the last layer back,
       a unit left without outgoing links loses its incoming ones; then from the first forward, a
       unit left without incoming links loses its outgoing ones.
    3. *Regrowth.* As many links as each layer lost, drawn without replacement with P ∝ CH2-L3n
       score of the kept topology among the positions it lacks (see :class:`CH2L3n`,
       :func:`sample_growth`); gradient-free.

    A link removed and regrown in the same update keeps its value and optimiser state (as in the
    authors' code); a new one starts at ``grow_init`` (zero, as theirs) with zeroed state. nnz per
    layer is constant. Cost: the sparse products of :class:`CH2L3n`, about (nnz x mean degree)
    per layer, in row blocks; the CHTs paper's sparse topological initialisation and density
    decay (CHTss) are not part of this rule.
    """

    name = "chts"
    display_name = "CHTs MLP (Cannistraci-Hebb soft rule)"

    def __init__(self, zeta: float = 0.3, every="epoch", end: int | None = None, soft_removal: bool = True,
                 temperature_start: float = 1.0, temperature_end: float = 3.0, chain_removal: bool = True,
                 grow_init: str = "zero"):
        super().__init__(MagnitudeDrop(), RandomGrow(), Schedule(zeta, every, "constant", end), grow_init)
        for label, t in (("temperature_start", temperature_start), ("temperature_end", temperature_end)):
            if not float(t) >= 0 or not np.isfinite(float(t)):
                raise ValueError(f"{label} must be a non-negative number (the authors' soft removal rises from 1 "
                                 f"to 3), got {t!r}")
        self.soft_removal = bool(soft_removal)
        self.temperature_start = float(temperature_start)
        self.temperature_end = float(temperature_end)
        self.chain_removal = bool(chain_removal)
        self.block_elements = 1 << 22

    @property
    def needs_gradient(self) -> bool:
        return False

    def temperature(self, epoch: int, step: int) -> float:
        end = self.schedule.end
        if not end:
            return self.temperature_start
        t = min(epoch if self.schedule.per_epoch else step, end)
        return self.temperature_start + (self.temperature_end - self.temperature_start) * t / end

    @torch.no_grad()
    def update(self, model, optimizer=None, epoch: int = 0, step: int = 0, rng=None, context=None) -> list[dict]:
        rng = check_random_state(rng)
        fraction = self.schedule.fraction(epoch, step)
        temperature = self.temperature(epoch, step)
        layers = [m for m in model.modules() if isinstance(m, SparseLinear)]
        patterns = [(layer.row_ptr.cpu().numpy().astype(np.int64), layer.col_idx.cpu().numpy()) for layer in layers]
        keeps = []
        for layer in layers:
            nnz = layer.nnz
            n_swap = min(int(round(fraction * nnz)), nnz - 1, layer.in_features * layer.out_features - nnz)
            magnitude = layer.values.detach().abs().cpu().numpy()
            if n_swap <= 0:
                keeps.append(None)
            elif self.soft_removal:
                keeps.append(soft_keep(magnitude, nnz - n_swap, temperature, rng))
            else:
                keep = np.ones(nnz, dtype=bool)
                keep[np.argsort(magnitude, kind="stable")[:n_swap]] = False
                keeps.append(keep)
        if self.chain_removal:
            _chain_removal(layers, patterns, keeps)
        info = []
        for index, (layer, (row_ptr, col_idx), keep) in enumerate(zip(layers, patterns, keeps)):
            if keep is None or keep.all():
                info.append({"layer": index, "nnz": layer.nnz, "dropped": 0, "grown": 0})
                continue
            n_grow = int((~keep).sum())
            scorer = CH2L3n(_pattern(row_ptr, col_idx, layer.in_features, keep), self.block_elements)
            grown = sample_growth(scorer, n_grow, rng)
            kept_keys = keys_from_csr(row_ptr, col_idx, layer.in_features)[keep]
            info.append(install_keys(layer, optimizer, np.sort(np.concatenate([kept_keys, grown])), rng,
                                     self.grow_init, index))
        return info

    def __repr__(self) -> str:
        return f"CHTs(zeta={self.schedule.zeta}, every={self.schedule.every!r}, soft_removal={self.soft_removal})"


def _chain_removal(layers, patterns, keeps) -> None:
    """The authors' chain removal on the keep masks of consecutive layers, in place."""
    n = len(layers)
    chained = [i for i in range(n - 1) if layers[i].out_features == layers[i + 1].in_features]

    def keep_of(i):
        if keeps[i] is None:
            keeps[i] = np.ones(layers[i].nnz, dtype=bool)
        return keeps[i]

    for i in reversed(chained):  # a unit with no outgoing link left loses its incoming links
        _, next_cols = patterns[i + 1]
        out_degree = np.bincount(np.asarray(next_cols)[keep_of(i + 1)], minlength=layers[i].out_features)
        rows = row_of_each(patterns[i][0])
        keep_of(i)[:] &= out_degree[rows] > 0
    for i in chained:  # a unit with no incoming link left loses its outgoing links
        rows_prev = row_of_each(patterns[i][0])
        in_degree = np.bincount(rows_prev[keep_of(i)], minlength=layers[i].out_features)
        _, cols = patterns[i + 1]
        keep_of(i + 1)[:] &= in_degree[np.asarray(cols)] > 0
