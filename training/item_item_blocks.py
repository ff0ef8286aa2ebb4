"""Memory-bounded kernels behind the item-to-item solves (:mod:`training.item_item`).

Every function here holds at most one ``n x n`` float32 matrix (the Gram matrix, later its
inverse, in the same buffer) plus ``block x n`` scratch, so the peak at ``n`` anime is about
``4 n^2`` bytes plus a few blocks: 1.6 GB at 20k anime instead of the ~8 GB the five dense copies
of a plain ``cholesky_inverse`` solve took.

- :func:`gram`: ``X'X`` of a sparse users x anime matrix, one row block at a time (sparse x
  sparse products: the cost is the sum over users of their list length squared, never a dense
  users x anime copy);
- :func:`invert_spd_in_place`: LAPACK ``potrf`` + ``potri`` with overwrite, in the Gram's buffer;
- :func:`rows_topk`: the k strongest entries of every row of a matrix given one row block at a
  time (``block`` bounds the scratch, and never changes the result);
- :func:`local_regressions`: EASE's column j is the ridge regression of anime j on all the others;
  restricted to j's ``m`` most co-occurring anime it becomes an ``m x m`` solve, batched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp
import torch
from scipy.linalg import lapack

Table = tuple[np.ndarray, np.ndarray]  # (index int32 [n, k], value float32 [n, k])
BLOCK = 1024  # rows per block: 1024 x 20k float32 = 80 MB of scratch


def blocks(n: int, block: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` row ranges of at most ``block`` rows covering ``0..n``."""
    step = max(int(block), 1)
    for start in range(0, n, step):
        yield start, min(start + step, n)


def list_matrix(
    users: np.ndarray, cols: np.ndarray, values: np.ndarray, n_users: int, n_cols: int
) -> sp.csr_matrix:
    """The sparse users x anime matrix (float32; duplicate rows summed, as the dense fill did
    not: callers pass one row per (user, anime))."""
    return sp.csr_matrix(
        (values.astype(np.float32), (users, cols)), shape=(n_users, n_cols), dtype=np.float32
    )


def cross_block(left_t: sp.csr_matrix, right: sp.csr_matrix, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of ``left' right`` as a dense float32 block (``left_t`` = left')."""
    out = (left_t[start:stop] @ right).toarray()
    return np.asarray(out, np.float32)


def gram(x: sp.csr_matrix, block: int = BLOCK) -> np.ndarray:
    """``X'X`` (float32, C order) filled one row block at a time."""
    n = x.shape[1]
    xt = x.T.tocsr()
    out = np.empty((n, n), np.float32)
    for start, stop in blocks(n, block):
        out[start:stop] = cross_block(xt, x, start, stop)
    return out


def invert_spd_in_place(a: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Overwrite the symmetric positive definite C-ordered float32 ``a`` with its inverse.

    LAPACK works on the transposed (Fortran-ordered) view, which is the same matrix; ``potrf``
    and ``potri`` fill one triangle, which is then mirrored one block at a time.
    """
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        raise ValueError("invert_spd_in_place needs a C-contiguous float32 matrix")
    fort = a.T
    chol, info = lapack.spotrf(fort, lower=0, overwrite_a=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"item-to-item Gram matrix is not positive definite ({info})")
    inv, info = lapack.spotri(chol, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"item-to-item inverse failed ({info})")
    if not np.shares_memory(inv, a):  # LAPACK wrapper copied after all: keep the contract
        a[...] = inv.T
    # the Fortran upper triangle is the C lower triangle: mirror it into the upper one
    n = a.shape[0]
    for start, stop in blocks(n, block):
        diag = a[start:stop, start:stop]
        diag[...] = np.tril(diag) + np.tril(diag, -1).T
        a[start:stop, stop:] = a[stop:, start:stop].T
    return a


def rows_topk(
    row_block: Callable[[int, int], np.ndarray],
    n: int,
    k: int,
    block: int = BLOCK,
    by_magnitude: bool = True,
) -> Table:
    """Top-``k`` of every row (by absolute value, or by value), the rows made ``block`` at a
    time by ``row_block(start, stop)``; positions are local (0..n-1)."""
    index = np.zeros((n, k), np.int32)
    value = np.zeros((n, k), np.float32)
    for start, stop in blocks(n, block):
        rows = torch.from_numpy(np.ascontiguousarray(row_block(start, stop), np.float32))
        key = rows.abs() if by_magnitude else rows
        _, idx = torch.topk(key, k, dim=1)
        index[start:stop] = idx.numpy()
        value[start:stop] = torch.gather(rows, 1, idx).numpy()
    return index, value


def ease_rows(p: np.ndarray) -> Callable[[int, int], np.ndarray]:
    """Row blocks of EASE's ``B = I - P diag(1/diag P)`` from the inverse ``P``."""
    inv_diag = (-1.0 / np.diagonal(p)).astype(np.float32)

    def rows(start: int, stop: int) -> np.ndarray:
        out = p[start:stop] * inv_diag[None, :]
        out[np.arange(stop - start), np.arange(start, stop)] = 0.0
        return out

    return rows


def candidates(g: np.ndarray, m: int, block: int = BLOCK) -> np.ndarray:
    """For every anime its ``m`` most co-occurring others by cosine, ``G_ij / sqrt(G_ii G_jj)``
    (never itself). Raw counts would hand every column the same popular anime, and niche anime,
    whose rows push hardest, would then sit in almost no regression."""
    n = g.shape[0]
    scale = 1.0 / np.sqrt(np.maximum(np.diagonal(g), 1e-12)).astype(np.float32)

    def rows(start: int, stop: int) -> np.ndarray:
        out: np.ndarray = g[start:stop] * scale[None, :] * scale[start:stop, None]
        out[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        return out

    index, _ = rows_topk(rows, n, m, block, by_magnitude=False)
    return index


def local_regressions(
    g: np.ndarray, reg: np.ndarray, cand: np.ndarray, k: int, batch: int = 64
) -> Table:
    """EASE from ``m``-anime local regressions, pruned to ``k`` per row.

    Column j of EASE's B regresses anime j on the others with ridge penalties ``reg`` (the
    diagonal constraint drops j): ``B[C, j] = (G[C, C] + diag(reg[C]))^-1 G[C, j]``. With ``C`` =
    every other anime this is exact; with ``C`` = j's candidates it is the sparse (SLIM-style)
    approximation. Each solve gives a column; rows (what having anime i on a list pushes) are
    gathered from all columns afterwards.
    """
    n, m = cand.shape
    val = np.empty((n, m), np.float32)
    for start, stop in blocks(n, batch):
        c = cand[start:stop]
        # rows first, then columns: half the time of one fancy index over both axes
        a = np.stack([g[row][:, row] for row in c])
        a[:, np.arange(m), np.arange(m)] += reg[c]
        rhs = g[c, np.arange(start, stop)[:, None]]
        # batched LU: torch's batched Cholesky on CPU is several times slower at these sizes
        coef = torch.linalg.solve(torch.from_numpy(a), torch.from_numpy(rhs[:, :, None]))
        val[start:stop] = coef[:, :, 0].numpy()
    return _rows_from_columns(cand, val, k)


def _rows_from_columns(src: np.ndarray, val: np.ndarray, k: int) -> Table:
    """Per source anime (row) the ``k`` strongest of its coefficients over all targets."""
    n, m = src.shape
    dst = np.repeat(np.arange(n, dtype=np.int32), m)
    s, v = src.ravel(), val.ravel()
    order = np.lexsort((-np.abs(v), s))
    s, v, dst = s[order], v[order], dst[order]
    first = np.searchsorted(s, np.arange(n))
    rank = np.arange(s.size) - first[s]
    keep = rank < k
    index = np.zeros((n, k), np.int32)
    value = np.zeros((n, k), np.float32)
    index[s[keep], rank[keep]] = dst[keep]
    value[s[keep], rank[keep]] = v[keep]
    return index, value


def pearson_rows(
    resid: sp.csr_matrix, mask: sp.csr_matrix, shrink: float
) -> Callable[[int, int], np.ndarray]:
    """Row blocks of the shrunk pearson-baseline similarity of the columns of ``resid`` (users x
    anime residuals; ``mask`` is 1 where the user scored the anime)."""
    sq_resid = resid.multiply(resid).tocsr()
    r_t, sq_t, mask_t = resid.T.tocsr(), sq_resid.T.tocsr(), mask.T.tocsr()

    def rows(start: int, stop: int) -> np.ndarray:
        num = cross_block(r_t, resid, start, stop)
        sq = cross_block(sq_t, mask, start, stop)  # sum of r_ui^2 over users who scored both
        sq_other = cross_block(mask_t, sq_resid, start, stop)  # the same for r_uj^2
        cnt = cross_block(mask_t, mask, start, stop)
        sim: np.ndarray = num / np.maximum(np.sqrt(sq * sq_other), 1e-9)
        sim *= np.maximum(cnt - 1.0, 0.0) / (cnt - 1.0 + shrink)
        sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
        return sim

    return rows
