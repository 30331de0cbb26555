"""Gaussian mixture, Louis' missing information of the labels: weighted monomial moments.

For a row x with responsibilities r_1..r_K and y = x - c (c a fixed centre), the missing
information of the labels is a sum over the pairs (k, l) of weights w_kl times outer products
of the complete-data scores, and every score is linear in phi(y) = (1, y, y_a y_b for the
quadratic pairs (a, b)).  So the data enter only through the moments

    M[p, m] = sum_i w_p(i) mono_m(y_i),

p over the pairs (k, k) (weight r_k (1 - r_k)) then (k, l), k < l (weight r_k r_l), and m over
the monomials of degree <= 4 of y, each the product phi_I[m] phi_J[m].  The caller turns M into
the information blocks (``GaussianMixture._missing_moments``).

A row whose membership is certain (the sum of its responsibilities other than the largest at
most ``certain``) contributes nothing and is skipped; so is, in the other rows, every pair
with a weight that small: (k, k) and (k, l) whenever r_k <= ``certain`` (then r_k (1 - r_k)
and r_k r_l are at most ``certain`` too).  The dropped weights are each at most ``certain``
per row -- the bound of the skipped rows -- so a moment changes by at most ``certain`` times
the sum over the rows of |mono_m(y_i)| times the number of pairs dropped in the row (with
``certain = 1e-13`` a relative change of the information far below the rounding of its
sums).  Near the maximum of a mixture of separated components a row of uncertain
membership has two or three components with a responsibility above that (about 3 pairs of
the K (K + 1) / 2 on simulated data, d = 8, K = 8), so skipping them cuts the work by an
order of magnitude.  1 - r_k is formed without cancellation: for the largest
responsibility it is the sum of the others, for any other k it is that sum plus the largest,
less r_k.

The rows are split into chunks of CHUNK rows (the parallel unit, OpenMP ``prange``); a thread
builds the monomials of each uncertain row in its own scratch space and adds them, times the
weight, to the chunk's partial moments of every pair that is kept (a scaled vector sum per
pair, no BLAS).  The caller adds the chunks' partials in chunk order, so the result is
bitwise identical for any number of threads.
"""

from cython.parallel cimport prange, threadid

import numpy as np

cdef extern from "gmm_louis.h" nogil:
    long emstats_louis_rows(long start, long stop, long d, long K, const double* X,
                            const double* R, const double* centre, long n_quad,
                            const long* qa, const long* qb, long n_runs,
                            const long* run_at, const long* run_len, const long* run_i,
                            const long* run_j, long n_mono, double certain,
                            double* work, double* out)

cdef Py_ssize_t CHUNK = 4096


def chunk_size():
    """Rows per parallel chunk."""
    return CHUNK


def n_chunks(Py_ssize_t n):
    """Number of chunks ``n`` rows are split into (the first axis of ``part``)."""
    return (n + CHUNK - 1) // CHUNK


def scratch_size(Py_ssize_t d, Py_ssize_t K, Py_ssize_t n_quad, Py_ssize_t n_mono):
    """Doubles of scratch per thread: the monomials and phi of a row."""
    return n_mono + 1 + d + n_quad


def _runs(I, J):
    """The monomials as runs of one I and consecutive J: (start, length, I, first J)."""
    I = np.asarray(I, dtype=np.int64)
    J = np.asarray(J, dtype=np.int64)
    if I.size == 0:
        return (np.zeros(0, np.int64),) * 4
    new = np.ones(I.size, dtype=bool)
    m = I.size
    new[1:] = (I[1:] != I[:m - 1]) | (J[1:] != J[:m - 1] + 1)
    at = np.flatnonzero(new).astype(np.int64)
    length = np.diff(np.append(at, m)).astype(np.int64)
    return at, length, np.ascontiguousarray(I[at]), np.ascontiguousarray(J[at])


def louis_moments(const double[:, ::1] X, const double[:, ::1] R, const double[::1] centre,
                  const Py_ssize_t[::1] qa, const Py_ssize_t[::1] qb,
                  const Py_ssize_t[::1] I, const Py_ssize_t[::1] J, double certain,
                  double[:, :, ::1] part, double[:, ::1] scratch, int n_threads):
    """Add each chunk's weighted monomial moments to ``part[c]``; see the module docstring.

    Parameters
    ----------
    X : (n, d) rows.
    R : (n, K) their responsibilities.
    centre : (d,) the centre c of y = x - c.
    qa, qb : (n_quad,) the quadratic terms y_qa * y_qb of phi.
    I, J : (n_mono,) indices into phi (length 1 + d + n_quad) of each monomial's factors.
    certain : rows whose responsibilities other than the largest sum to at most this are
        skipped, and in the others the pairs (k, .) with r_k at most this.
    part : (n_chunks(n), K (K + 1) / 2, n_mono) zero-initialised partial moments per chunk.
    scratch : (n_threads, scratch_size(d, K, n_quad, n_mono)) work space.
    n_threads : OpenMP threads.

    Returns
    -------
    int
        The number of rows of uncertain membership (those that contributed).
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = R.shape[1]
    cdef Py_ssize_t n_quad = qa.shape[0], n_mono = I.shape[0]
    cdef Py_ssize_t n_pairs = K * (K + 1) // 2, nphi = 1 + d + n_quad
    cdef Py_ssize_t nch = (n + CHUNK - 1) // CHUNK
    cdef Py_ssize_t c, start, stop, a, tid
    cdef Py_ssize_t used = 0
    if R.shape[0] != n or centre.shape[0] != d or J.shape[0] != n_mono or qb.shape[0] != n_quad:
        raise ValueError("inconsistent shapes")
    if part.shape[0] < nch or part.shape[1] != n_pairs or part.shape[2] != n_mono:
        raise ValueError("part has the wrong shape")
    if scratch.shape[0] < n_threads or scratch.shape[1] < scratch_size(d, K, n_quad, n_mono):
        raise ValueError("scratch is too small")
    for a in range(n_mono):
        if I[a] < 0 or I[a] >= nphi or J[a] < 0 or J[a] >= nphi:
            raise ValueError("a monomial index is out of range")
    for a in range(n_quad):
        if qa[a] < 0 or qa[a] >= d or qb[a] < 0 or qb[a] >= d:
            raise ValueError("a quadratic index is out of range")
    if n == 0:
        return 0
    at, length, ri, rj = _runs(I, J)
    cdef const long[::1] run_at = at, run_len = length, run_i = ri, run_j = rj
    cdef const long[::1] qa_l = np.ascontiguousarray(qa, dtype=np.int64)
    cdef const long[::1] qb_l = np.ascontiguousarray(qb, dtype=np.int64)
    cdef long n_runs = at.shape[0]
    cdef const long* pqa = &qa_l[0] if n_quad else NULL
    cdef const long* pqb = &qb_l[0] if n_quad else NULL
    for c in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        tid = threadid()
        start = c * CHUNK
        stop = start + CHUNK
        if stop > n:
            stop = n
        used += emstats_louis_rows(start, stop, d, K, &X[0, 0], &R[0, 0], &centre[0],
                                   n_quad, pqa, pqb, n_runs, &run_at[0], &run_len[0],
                                   &run_i[0], &run_j[0], n_mono, certain, &scratch[tid, 0],
                                   &part[c, 0, 0])
    return used
