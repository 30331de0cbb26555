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
most ``certain``) contributes nothing and is skipped.  1 - r_k is formed without
cancellation: for the largest responsibility it is the sum of the others, for any other k it is
that sum plus the largest, less r_k.

The rows are split into chunks of CHUNK rows (the parallel unit, OpenMP ``prange``); a thread
gathers a chunk's uncertain rows into blocks of SUB rows, builds their monomials and weights in
its own scratch space and adds them to the chunk's partial moments by one matrix product
(BLAS ``dgemm`` on one thread inside the parallel region, see ``emstats/_blas.py``).  The
caller adds the chunks' partials in chunk order, so the result is bitwise identical for any
number of threads.
"""

from cython.parallel cimport prange, threadid
from scipy.linalg.cython_blas cimport dgemm

from emstats._blas import single_threaded_blas

cdef Py_ssize_t CHUNK = 4096
cdef Py_ssize_t SUB = 128


def chunk_size():
    """Rows per parallel chunk."""
    return CHUNK


def n_chunks(Py_ssize_t n):
    """Number of chunks ``n`` rows are split into (the first axis of ``part``)."""
    return (n + CHUNK - 1) // CHUNK


def scratch_size(Py_ssize_t d, Py_ssize_t K, Py_ssize_t n_quad, Py_ssize_t n_mono):
    """Doubles of scratch per thread: the monomials and weights of SUB rows, phi of a row."""
    cdef Py_ssize_t n_pairs = K * (K + 1) // 2
    return SUB * n_mono + SUB * n_pairs + 1 + d + n_quad


cdef void _flush(Py_ssize_t m, Py_ssize_t n_mono, Py_ssize_t n_pairs, double* prod,
                 double* w, double* out) noexcept nogil:
    """out (n_pairs x n_mono, row-major) += W' Prod for the m rows in the buffers: Prod
    column-major (n_mono x m, one row of the data per column), W column-major (m x n_pairs,
    leading dimension SUB)."""
    cdef int im = <int>m, inm = <int>n_mono, inp = <int>n_pairs, isub = <int>SUB
    cdef double one = 1.0
    cdef char tn = b'N'
    dgemm(&tn, &tn, &inm, &inp, &im, &one, prod, &inm, w, &isub, &one, out, &inm)


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
        skipped.
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
    cdef Py_ssize_t c, i, start, stop, m, k, l, p, a, top, tid
    cdef Py_ssize_t used = 0
    cdef double rmax, rest, rk
    cdef double* prod
    cdef double* w
    cdef double* phi
    cdef double* row
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
    with single_threaded_blas():
        for c in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
            tid = threadid()
            prod = &scratch[tid, 0]
            w = prod + SUB * n_mono
            phi = w + SUB * n_pairs
            start = c * CHUNK
            stop = start + CHUNK
            if stop > n:
                stop = n
            m = 0
            for i in range(start, stop):
                top = 0
                rmax = R[i, 0]
                for k in range(1, K):
                    if R[i, k] > rmax:
                        rmax = R[i, k]
                        top = k
                rest = 0.0
                for k in range(K):
                    if k != top:
                        rest = rest + R[i, k]
                if rest <= certain:
                    continue
                used += 1
                # the weights: r_k (1 - r_k), then r_k r_l (k < l)
                for k in range(K):
                    rk = R[i, k]
                    w[m + k * SUB] = rk * (rest + rmax - rk)
                w[m + top * SUB] = rmax * rest
                p = K
                for k in range(K):
                    rk = R[i, k]
                    for l in range(k + 1, K):
                        w[m + p * SUB] = rk * R[i, l]
                        p = p + 1
                # phi(y) and the monomials
                phi[0] = 1.0
                for a in range(d):
                    phi[1 + a] = X[i, a] - centre[a]
                for a in range(n_quad):
                    phi[1 + d + a] = phi[1 + qa[a]] * phi[1 + qb[a]]
                row = prod + m * n_mono
                for a in range(n_mono):
                    row[a] = phi[I[a]] * phi[J[a]]
                m = m + 1
                if m == SUB:
                    _flush(m, n_mono, n_pairs, prod, w, &part[c, 0, 0])
                    m = 0
            if m > 0:
                _flush(m, n_mono, n_pairs, prod, w, &part[c, 0, 0])
    return used
