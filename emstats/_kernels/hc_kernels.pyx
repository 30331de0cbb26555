"""Model-based hierarchical agglomeration (Fraley 1998) for the unconstrained (VVV)
Gaussian model: the merge loop of :mod:`emstats.components.hc`.

Every cluster C (n_C rows, mean m_C, scatter matrix W_C, trace t_C) has the term

    T(C) = n_C log(beta (t_C + alpha) / n_C)                      if n_C <= p,
    T(C) = n_C log(alpha beta / n_C)                              if t_C = 0,
    T(C) = n_C log(det(W_C / n_C) + beta (t_C + alpha) / n_C)     otherwise,

the classification log-likelihood term n_C log det(W_C / n_C) of the VVV model,
regularised by a multiple of the trace so that it is finite for small clusters (the
criterion of mclust's ``hcVVV``, with ``alpha`` the mean variance of the data per
coordinate times mclust's alpha = 1, and beta = 1).  Merging A and B costs
T(A u B) - T(A) - T(B); the pair of least cost is merged, n - 1 times.  The scatter
of a union is W_A + W_B + (n_A n_B / n_AB) (m_A - m_B)(m_A - m_B)'.

The costs of all pairs are kept in an n x n matrix (the only O(n^2) memory), with each
cluster's cheapest partner cached: after a merge the merged cluster's row is
recomputed (n evaluations of O(p^3)), and only the clusters whose cached partner was
one of the two merged are rescanned, so a step costs O(n p^3) plus O(n) per rescan.
"""

# cython: language_level=3

from libc.math cimport INFINITY, exp, log, log1p, sqrt
from libc.stdlib cimport free, malloc

import numpy as np


cdef inline double _term(int nc, int p, double tr, double* U, double alpha,
                         double beta) noexcept nogil:
    """T(C) of a cluster of nc rows with trace tr; U (p x p, overwritten) its scatter,
    read only when nc > p."""
    cdef double c, s, detlog
    cdef int i, j, k
    if nc <= p:
        return nc * log(beta * (tr + alpha) / nc)
    if tr == 0.0:
        return nc * log(alpha * beta / nc)
    c = beta * (tr + alpha) / nc
    # Cholesky of U in place (lower triangle); a non-positive pivot: det = 0
    detlog = 0.0
    for j in range(p):
        s = U[j * p + j]
        for k in range(j):
            s -= U[j * p + k] * U[j * p + k]
        if not (s > 0.0):
            return nc * log(c)
        s = sqrt(s)
        U[j * p + j] = s
        detlog += 2.0 * log(s)
        for i in range(j + 1, p):
            s = U[i * p + j]
            for k in range(j):
                s -= U[i * p + k] * U[j * p + k]
            U[i * p + j] = s / U[j * p + j]
    detlog -= p * log(<double>nc)
    if detlog <= 0.0:
        return nc * log(exp(detlog) + c)
    return nc * (log1p(exp(-detlog) * c) + detlog)


cdef inline double _union(int a, int b, int p, int* cnt, double* mean, double* W,
                          double* tr, double* U, double* dv, double alpha,
                          double beta) noexcept nogil:
    """T(A u B) of clusters a and b (U, dv: p x p and p scratch)."""
    cdef int na = cnt[a], nb = cnt[b], nab = na + nb
    cdef double f = (<double>na) * nb / nab, t, x
    cdef int i, j
    t = tr[a] + tr[b]
    for i in range(p):
        x = mean[a * p + i] - mean[b * p + i]
        dv[i] = x
        t += f * x * x
    if nab > p and t != 0.0:
        for i in range(p):
            for j in range(i + 1):
                U[i * p + j] = (W[(a * p + i) * p + j] + W[(b * p + i) * p + j]
                                + f * dv[i] * dv[j])
    return _term(nab, p, t, U, alpha, beta)


cdef inline void _rescan(int k, int m, int n, int* act, double* D, int* nn,
                         double* nnd) noexcept nogil:
    cdef int t, j
    cdef double best = INFINITY, v
    cdef int arg = -1
    for t in range(m):
        j = act[t]
        if j == k:
            continue
        v = D[<Py_ssize_t>k * n + j]
        if v < best:
            best = v
            arg = j
    nn[k] = arg
    nnd[k] = best


def hc_vvv(const double[:, ::1] Z, double alpha, double beta, long[:, ::1] pairs,
           double[::1] costs):
    """Agglomerate the n rows of ``Z`` (n x p) from singletons: ``pairs[s] = (i, j)``,
    i < j, the s-th merge (the cluster represented by row j joins the one represented
    by row i; a cluster is represented by its smallest row), ``costs[s]`` its cost."""
    cdef int n = Z.shape[0], p = Z.shape[1]
    if n < 2:
        return
    if pairs.shape[0] < n - 1 or costs.shape[0] < n - 1:
        raise ValueError("pairs and costs need n - 1 rows")
    cdef double* D = <double*>malloc(<size_t>n * n * sizeof(double))
    cdef double* mean = <double*>malloc(<size_t>n * p * sizeof(double))
    cdef double* W = <double*>malloc(<size_t>n * p * p * sizeof(double))
    cdef double* tr = <double*>malloc(n * sizeof(double))
    cdef double* T = <double*>malloc(n * sizeof(double))
    cdef double* nnd = <double*>malloc(n * sizeof(double))
    cdef double* U = <double*>malloc(p * p * sizeof(double))
    cdef double* dv = <double*>malloc(p * sizeof(double))
    cdef int* cnt = <int*>malloc(n * sizeof(int))
    cdef int* nn = <int*>malloc(n * sizeof(int))
    cdef int* act = <int*>malloc(n * sizeof(int))
    cdef int* pos = <int*>malloc(n * sizeof(int))
    if (D == NULL or mean == NULL or W == NULL or tr == NULL or T == NULL or nnd == NULL
            or U == NULL or dv == NULL or cnt == NULL or nn == NULL or act == NULL
            or pos == NULL):
        free(D); free(mean); free(W); free(tr); free(T); free(nnd); free(U); free(dv)
        free(cnt); free(nn); free(act); free(pos)
        raise MemoryError("hierarchical agglomeration: not enough memory")
    cdef int i, j, k, t, s, m, a, b, lo, hi, na, nb, nab
    cdef double v, best, f, x, ablog = log(alpha * beta)
    try:
        with nogil:
            for i in range(n):
                cnt[i] = 1
                tr[i] = 0.0
                T[i] = ablog
                act[i] = i
                pos[i] = i
                for j in range(p):
                    mean[i * p + j] = Z[i, j]
                for j in range(p * p):
                    W[<Py_ssize_t>i * p * p + j] = 0.0
            for i in range(n):
                D[<Py_ssize_t>i * n + i] = INFINITY
                for j in range(i + 1, n):
                    v = _union(i, j, p, cnt, mean, W, tr, U, dv, alpha, beta) - 2.0 * ablog
                    D[<Py_ssize_t>i * n + j] = v
                    D[<Py_ssize_t>j * n + i] = v
            m = n
            for i in range(n):
                _rescan(i, m, n, act, D, nn, nnd)
            for s in range(n - 1):
                # the cheapest pair
                best = INFINITY
                a = act[0]
                for t in range(m):
                    k = act[t]
                    if nnd[k] < best:
                        best = nnd[k]
                        a = k
                b = nn[a]
                lo = a if a < b else b
                hi = b if a < b else a
                pairs[s, 0] = lo
                pairs[s, 1] = hi
                costs[s] = best
                # merge hi into lo
                na = cnt[lo]
                nb = cnt[hi]
                nab = na + nb
                T[lo] = _union(lo, hi, p, cnt, mean, W, tr, U, dv, alpha, beta)
                f = (<double>na) * nb / nab
                for i in range(p):
                    dv[i] = mean[lo * p + i] - mean[hi * p + i]
                tr[lo] += tr[hi]
                for i in range(p):
                    tr[lo] += f * dv[i] * dv[i]
                for i in range(p):
                    for j in range(p):
                        W[(lo * p + i) * p + j] += W[(hi * p + i) * p + j] + f * dv[i] * dv[j]
                for i in range(p):
                    mean[lo * p + i] = (na * mean[lo * p + i] + nb * mean[hi * p + i]) / nab
                cnt[lo] = nab
                # drop hi from the active list
                t = pos[hi]
                m -= 1
                act[t] = act[m]
                pos[act[t]] = t
                if m == 1:
                    break
                # the merged cluster's costs, then the cached partners
                for t in range(m):
                    k = act[t]
                    if k == lo:
                        continue
                    v = _union(lo, k, p, cnt, mean, W, tr, U, dv, alpha, beta) - T[lo] - T[k]
                    D[<Py_ssize_t>lo * n + k] = v
                    D[<Py_ssize_t>k * n + lo] = v
                for t in range(m):
                    k = act[t]
                    if k == lo:
                        continue
                    if nn[k] == lo or nn[k] == hi:
                        _rescan(k, m, n, act, D, nn, nnd)
                    elif D[<Py_ssize_t>k * n + lo] < nnd[k]:
                        nn[k] = lo
                        nnd[k] = D[<Py_ssize_t>k * n + lo]
                _rescan(lo, m, n, act, D, nn, nnd)
    finally:
        free(D); free(mean); free(W); free(tr); free(T); free(nnd); free(U); free(dv)
        free(cnt); free(nn); free(act); free(pos)
