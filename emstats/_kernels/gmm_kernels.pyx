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
The log-densities and the log-sum-exp (with a vectorisable exponential) are the
shared code of ``emmath.h`` (the HMM kernels use the same); the weighted sums are in
``gmm_stats.h``.
"""

from cython.parallel cimport prange, threadid
from scipy.linalg.cython_blas cimport dgemm

from emstats._blas import single_threaded_blas

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


cdef extern from "emmath.h" nogil:
    void emstats_gauss_diag_logdens(long m, long d, long K, const double* Xt, long ldx,
                                    const double* inv_sd, const double* scaled_means,
                                    const double* log_const, double* Yt, double* Lt)
    void emstats_gauss_whitened_logdens(long m, long d, long K, const double* shift,
                                        const double* log_const, double* Yt, double* Lt)
    long emstats_rows_softmax(long m, long K, double* Lt, double* lse, double* sum)
    void emstats_untranspose(const double* Lt, long m, long K, double* out)

cdef extern from "gmm_stats.h" nogil:
    void emstats_gmm_stats(long m, long d, long K, int diag, const double* Rt,
                           const double* Yt, double* Zt, double* pn, double* ps,
                           double* td)


cdef void _block(const double* XTp, Py_ssize_t ldx, Py_ssize_t m, Py_ssize_t d, Py_ssize_t K,
                 const double* Wtp, const double* up, const double* bp, const double* logc,
                 int diag, double* work, double* pn, double* ps, double* pt, double* td,
                 double* pll, double* resp, double* llo) noexcept nogil:
    """One sub-block of m <= SUB rows, read from the transposed data XT (d x n, row
    stride ldx) at the block's first column, and held transposed in ``work``:
    Yt, Zt (K d x m), Lt (K x m), llrow, rowsum (m)."""
    cdef double one = 1.0, zero = 0.0, acc = 0.0
    cdef int im = <int>m, id_ = <int>d, iKd = <int>(K * d), ildx = <int>ldx
    cdef Py_ssize_t i, k, Kd = K * d
    cdef char tn = b'N'
    cdef char tt = b'T'
    cdef double* Yt = work
    cdef double* Zt = work + SUB * Kd
    cdef double* Lt = work + 2 * SUB * Kd
    cdef double* llrow = Lt + SUB * K
    cdef double* rowsum = llrow + SUB
    if llo != NULL:
        llrow = llo
    if diag:
        emstats_gauss_diag_logdens(m, d, K, XTp, ldx, up, bp, logc, Yt, Lt)
    else:
        # Yt (K d x m, row-major) = W' X_b', i.e. column-major (m x K d) = X_b (m x d) W,
        # with X_b column-major in XT (ld ldx) and W' stored row-major (K d x d)
        dgemm(&tn, &tn, &im, &iKd, &id_, &one, <double*>XTp, &ildx, <double*>Wtp, &id_,
              &zero, Yt, &im)
        emstats_gauss_whitened_logdens(m, d, K, bp, logc, Yt, Lt)
    pll[1] = pll[1] + <double>emstats_rows_softmax(m, K, Lt, llrow, rowsum)
    for i in range(m):
        acc = acc + llrow[i]
    pll[0] = pll[0] + acc
    if resp != NULL:
        emstats_untranspose(Lt, m, K, resp)
    emstats_gmm_stats(m, d, K, diag, Lt, Yt, Zt, pn, ps, td)
    if not diag:
        # T_k (d x d) += Z_k Y_k' with Z_k, Y_k the d x m row blocks (column-major m x d)
        for k in range(K):
            dgemm(&tt, &tn, &id_, &id_, &im, &one, Zt + k * d * m, &im, Yt + k * d * m, &im,
                  &one, pt + k * d * d, &id_)


def gmm_estep(const double[:, ::1] XT, const double[:, ::1] Wt, const double[::1] u,
              const double[::1] b, const double[::1] logc, int diag,
              double[:, ::1] part_n, double[:, ::1] part_s, double[:, :, ::1] part_t,
              double[:, ::1] part_ll, double[:, ::1] scratch,
              double[:, ::1] resp_out, double[::1] ll_out, int n_threads):
    """One E-step pass; see the module docstring.

    Parameters
    ----------
    XT : (d, n) the data, transposed (one column per row of the data).
    Wt : (K d, d) whitening factors stacked, Wt[k d:(k+1) d, :] = U_k'
        (not read when ``diag``).
    u : (K d,) diagonals of the U_k (read when ``diag``).
    b : (K d,) b_k = U_k' mu_k.
    logc : (K,) log pi_k - d/2 log(2 pi) + log det U_k.
    diag : 1 when every U_k is diagonal.
    part_n, part_s, part_t, part_ll : zero-initialised outputs of shapes
        (nch, K), (nch, K d), (nch, K, d d), (nch, 2); part_ll[c] holds the
        log-likelihood of the chunk and the number of rows whose log-density was
        not finite in every component.
    scratch : (n_threads, scratch_size(K, d)) work space.
    resp_out : (n, K) responsibilities, or (0, K) not to write them.
    ll_out : (n,) per-row log-likelihood, or (0,) not to write them.
    """
    cdef Py_ssize_t n = XT.shape[1], d = XT.shape[0], K = logc.shape[0]
    cdef Py_ssize_t nch = (n + CHUNK - 1) // CHUNK
    cdef Py_ssize_t c, start, stop, s0, m, tid, j, Kd = K * d
    cdef int want_r = resp_out.shape[0] == n and n > 0
    cdef int want_l = ll_out.shape[0] == n and n > 0
    cdef double* work
    cdef double* td
    cdef double* rp
    cdef double* lp
    if scratch.shape[1] < _scratch(K, d) or scratch.shape[0] < n_threads:
        raise ValueError("scratch is too small")
    if n == 0:
        return
    # dgemm inside prange: BLAS on one thread (see emstats/_blas.py)
    with single_threaded_blas():
        for c in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
            tid = threadid()
            work = &scratch[tid, 0]
            td = work + _scratch(K, d) - Kd
            for j in range(Kd):
                td[j] = 0.0
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
                _block(&XT[0, s0], n, m, d, K, &Wt[0, 0], &u[0], &b[0], &logc[0], diag, work,
                       &part_n[c, 0], &part_s[c, 0], &part_t[c, 0, 0], td, &part_ll[c, 0],
                       rp, lp)
                s0 = s0 + m
            if diag:
                for j in range(Kd):
                    part_t[c, j // d, (j % d) * (d + 1)] = td[j]


cdef inline Py_ssize_t _scratch(Py_ssize_t K, Py_ssize_t d) noexcept nogil:
    return 2 * SUB * K * d + SUB * K + 2 * SUB + K * d


def scratch_size(Py_ssize_t K, Py_ssize_t d):
    """Doubles of scratch per thread: Yt, Zt (K d x SUB), Lt (K x SUB), two SUB
    vectors and the diagonal sums (K d)."""
    return _scratch(K, d)
