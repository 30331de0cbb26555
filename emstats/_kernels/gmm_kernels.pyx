"""Gaussian-mixture E-step: log-densities, responsibilities and sufficient statistics
in one pass over the data.

Component k is described by its *whitening* factor U_k (upper triangular, with
Sigma_k^-1 = U_k U_k') and b_k = U_k' mu_k, so that the whitened residual of row
x is y_k = U_k'(x - mu_k) = U_k'x - b_k and

    log pi_k + log phi(x; mu_k, Sigma_k) = logc_k - |y_k|^2 / 2,
    logc_k = log pi_k - d/2 log(2 pi) + sum_j log U_k[j, j].

The rows are processed in chunks of CHUNK rows (the unit of parallel work), each
in sub-blocks of SUB rows.  For a sub-block the whitened residuals of all K
components come from one matrix product X_b [U_1 ... U_K] (BLAS dgemm, called
single-threaded inside the parallel region), then a log-sum-exp per row gives
the responsibilities r_ik and the log-likelihood, and the statistics are
accumulated in whitened coordinates:

    N_k = sum r_ik,   s_k = sum r_ik y_ik,   T_k = sum r_ik y_ik y_ik'

(T_k by a second dgemm per component).  The caller turns them into the scatter
matrices about the current means: sum r (x - mu)(x - mu)' = L T L' and
sum r (x - mu) = L s with L = U^-T.  Accumulating about the current means in
whitened coordinates avoids the cancellation of raw moments.

A diagonal structure (all U_k diagonal) skips the matrix products: the residuals
are formed elementwise and only the diagonal of T_k is accumulated.

Per-chunk partial sums are written to ``part_*[c]`` and reduced by the caller in
chunk order, so the results are bitwise identical for any number of threads.
The working memory is two SUB x K d buffers per thread: no N x K x d temporary.
"""

from cython.parallel cimport prange, threadid
from libc.math cimport exp, log, INFINITY, isfinite
from scipy.linalg.cython_blas cimport dgemm

cdef Py_ssize_t CHUNK = 2048
cdef Py_ssize_t SUB = 256


def chunk_size():
    """Rows per parallel chunk."""
    return CHUNK


def sub_size():
    """Rows per sub-block (the size of the per-thread buffers)."""
    return SUB


def n_chunks(Py_ssize_t n):
    """Number of row chunks the kernel splits ``n`` rows into."""
    return (n + CHUNK - 1) // CHUNK


cdef void _block(const double* Xp, Py_ssize_t m, Py_ssize_t d, Py_ssize_t K,
                 const double* Wp, const double* bp, const double* logc, int diag,
                 double* Y, double* Z, double* pn, double* ps, double* pt, double* pll,
                 double* resp, double* llo) noexcept nogil:
    """One sub-block of m rows (row-major X of stride d).  Y, Z: m x K d buffers."""
    cdef int one_i = 1
    cdef double one = 1.0, zero = 0.0
    cdef int im = <int>m, id_ = <int>d, iKd = <int>(K * d)
    cdef Py_ssize_t i, j, k, Kd = K * d, o
    cdef double q, v, mx, s, ll, r, yv
    cdef char tn = b'N'
    cdef char tt = b'T'
    cdef double lk[256]
    if not diag:
        # Y (m x Kd, row-major) = X_b (m x d) W (d x Kd): column-major Y' = W' X_b'
        dgemm(&tn, &tn, &iKd, &im, &id_, &one, <double*>Wp, &iKd, <double*>Xp, &id_,
              &zero, Y, &iKd)
    for i in range(m):
        mx = -INFINITY
        for k in range(K):
            o = i * Kd + k * d
            q = 0.0
            if diag:
                for j in range(d):
                    yv = Xp[i * d + j] * Wp[j * Kd + k * d + j] - bp[k * d + j]
                    Y[o + j] = yv
                    q = q + yv * yv
            else:
                for j in range(d):
                    yv = Y[o + j] - bp[k * d + j]
                    Y[o + j] = yv
                    q = q + yv * yv
            v = logc[k] - 0.5 * q
            lk[k] = v
            if v > mx:
                mx = v
        s = 0.0
        for k in range(K):
            v = exp(lk[k] - mx)
            lk[k] = v
            s = s + v
        ll = mx + log(s)
        if not isfinite(ll):
            pll[1] = pll[1] + 1.0
            if llo != NULL:
                llo[i] = ll
            if resp != NULL:
                for k in range(K):
                    resp[i * K + k] = 0.0
            if not diag:
                for j in range(Kd):
                    Z[i * Kd + j] = 0.0
            continue
        pll[0] = pll[0] + ll
        if llo != NULL:
            llo[i] = ll
        s = 1.0 / s
        for k in range(K):
            r = lk[k] * s
            if resp != NULL:
                resp[i * K + k] = r
            pn[k] = pn[k] + r
            o = i * Kd + k * d
            if diag:
                for j in range(d):
                    yv = r * Y[o + j]
                    ps[k * d + j] = ps[k * d + j] + yv
                    pt[k * d * d + j * d + j] = pt[k * d * d + j * d + j] + yv * Y[o + j]
            else:
                for j in range(d):
                    yv = r * Y[o + j]
                    Z[o + j] = yv
                    ps[k * d + j] = ps[k * d + j] + yv
    if not diag:
        # T_k (d x d) += Z_k' Y_k, with Z_k' the column-major d x m block at Z + k d
        for k in range(K):
            dgemm(&tn, &tt, &id_, &id_, &im, &one, Z + k * d, &iKd, Y + k * d, &iKd,
                  &one, pt + k * d * d, &id_)


def gmm_estep(const double[:, ::1] X, const double[:, ::1] W, const double[::1] b,
              const double[::1] logc, int diag,
              double[:, ::1] part_n, double[:, ::1] part_s, double[:, :, ::1] part_t,
              double[:, ::1] part_ll, double[:, ::1] ybuf, double[:, ::1] zbuf,
              double[:, ::1] resp_out, double[::1] ll_out, int n_threads):
    """One E-step pass; see the module docstring.

    Parameters
    ----------
    X : (n, d) data.
    W : (d, K d) whitening factors side by side, W[:, k d:(k+1) d] = U_k
        (only the diagonals are read when ``diag``).
    b : (K d,) b_k = U_k' mu_k.
    logc : (K,) log pi_k - d/2 log(2 pi) + log det U_k.
    diag : 1 when every U_k is diagonal.
    part_n, part_s, part_t, part_ll : zero-initialised outputs of shapes
        (nch, K), (nch, K d), (nch, K, d d), (nch, 2); part_ll[c] holds the
        log-likelihood of the chunk and the number of rows whose density
        underflowed (or was not finite) everywhere.
    ybuf, zbuf : (n_threads, SUB K d) scratch.
    resp_out : (n, K) responsibilities, or (0, K) not to write them.
    ll_out : (n,) per-row log-likelihood, or (0,) not to write them.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = logc.shape[0]
    cdef Py_ssize_t nch = (n + CHUNK - 1) // CHUNK
    cdef Py_ssize_t c, start, stop, s0, m, tid
    cdef int want_r = resp_out.shape[0] == n and n > 0
    cdef int want_l = ll_out.shape[0] == n and n > 0
    cdef double* rp
    cdef double* lp
    if K > 256:
        raise ValueError("at most 256 components")
    if n == 0:
        return
    for c in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        tid = threadid()
        start = c * CHUNK
        stop = start + CHUNK
        if stop > n:
            stop = n
        s0 = start
        while s0 < stop:
            m = stop - s0
            if m > SUB:
                m = SUB
            rp = NULL
            lp = NULL
            if want_r:
                rp = &resp_out[s0, 0]
            if want_l:
                lp = &ll_out[s0]
            _block(&X[s0, 0], m, d, K, &W[0, 0], &b[0], &logc[0], diag,
                   &ybuf[tid, 0], &zbuf[tid, 0], &part_n[c, 0], &part_s[c, 0],
                   &part_t[c, 0, 0], &part_ll[c, 0], rp, lp)
            s0 = s0 + m
