"""Hidden Markov model kernels: emission densities, scaled forward-backward, Viterbi.

The observations of all sequences are stacked in one array of T rows;
``seq_start`` (n_seq + 1 offsets) says where each sequence begins.  Sequences
are grouped by the caller into *blocks* of consecutive sequences
(``blocks[c] = (first, last + 1)`` sequence indices); each block owns one row of the
partial-sum array ``part`` (a per-block accumulator), blocks are processed in
parallel with ``prange`` and the caller reduces ``part`` in block order.  The
partition depends only on the data, so results are bitwise identical for any
number of threads.  Very long sequences form blocks of their own and are
handled by the row-chunked functions (``emission_rows``, ``forward_backward_one``,
``stats_rows``) so that their emission densities and statistics still use all
threads.

Scaling.  For each row t the log-densities l_t(k) are shifted by their maximum
m_t and exponentiated once, b_t(k) = exp(l_t(k) - m_t).  The forward variables
are renormalised to sum to one at every step (Rabiner's scaling): with
c_t = sum_k (alpha_(t-1) A)_k b_t(k), log L = sum_t (log c_t + m_t).  The
backward pass reuses c_t, overwrites alpha_t by the smoothed probability
gamma_t = alpha_t * beta_t and accumulates the expected transition counts
sum_t xi_t(i, j) = sum_t alpha_t(i) A_ij b_(t+1)(j) beta_(t+1)(j) / c_(t+1).
Nothing underflows however long the sequence, and the memory is the T x K
arrays ``b`` and ``alpha`` plus T scale factors.

Emission types (``etype``): 0 Poisson, 1 Gaussian with diagonal covariance,
2 Gaussian with full covariance, 3 categorical.  Parameter arrays ``p1``,
``p2``, ``p3`` mean, per type:

* Poisson: log rates (K), rates (K), log(x!) per row (T);
* Gaussian diagonal: means (K*d), inverse variances (K*d), log constants (K);
* Gaussian full: means (K*d), inverse Cholesky factors L_k^-1 (K*d*d, lower
  triangular, row-major), log constants (K);
* categorical: log probabilities (K*M), unused, unused (codes in ``codes``).

Layout of a row of ``part`` in :func:`estep`: ``[loglik, n_bad, gamma_0 (K),
sum_t alpha_t w_(t+1)' (K*K), emission sums]``.  The emission sums are the K x q
matrix sum_t gamma_t' Y_t of the features Y = [1, x] (Poisson), [1, x, x^2]
(Gaussian, diagonal) or [1, x, vec(x x')] (Gaussian, full), computed with the data
centred by the caller; categorical: the occupancies (K) then the symbol counts (K*M).
Both matrix products are BLAS dgemm calls on one sequence (or one chunk of rows):
small enough that the BLAS runs single-threaded, so the result is deterministic.
"""

from cython.parallel cimport prange
from libc.math cimport log, INFINITY, isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from scipy.linalg.cython_blas cimport dgemm

cdef extern from "hmm_rows.h" nogil:
    double hmm_exp_clamped(double y)
    void hmm_diag_logdens(const double* Xt, int64_t T, int64_t r0, int64_t m, int64_t d,
                          int64_t K, const double* mu, const double* iv, const double* lc,
                          double* L)
    int hmm_max_exp(double* L, int64_t m, int64_t K, double* b, double* mx, int log_only)

cdef Py_ssize_t CHUNK = 4096
cdef double GAMMA_MIN = 1e-280   # smoothed probabilities below this count as zero (Louis)
cdef Py_ssize_t EBLOCK = 256      # rows per transposed block of the emission pass
cdef double BIG = 1e200
cdef double SMALL = 1e-200


def exp_nonpositive(const double[::1] x, double[::1] out):
    """The kernels' exponential (``hmm_exp_clamped`` of hmm_rows.h) of x <= 0, zero below
    -708 as in the emission pass (for tests)."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = 0.0 if x[i] < -708.0 else hmm_exp_clamped(x[i])


cdef struct Emis:
    int etype
    Py_ssize_t K
    Py_ssize_t d
    Py_ssize_t M
    Py_ssize_t T
    const double* X
    const double* Xt
    const int64_t* codes
    const double* p1
    const double* p2
    const double* p3


def chunk_rows():
    """Rows per chunk of the row-parallel functions."""
    return CHUNK


cdef inline void _logdens(const Emis* e, Py_ssize_t t, double* out) noexcept nogil:
    """Write the K log-densities of row t."""
    cdef Py_ssize_t k, j, i, K = e.K, d = e.d
    cdef double s, q, x, r
    cdef const double* xt
    if e.etype == 0:
        x = e.X[t]
        for k in range(K):
            if x == 0.0:
                out[k] = -e.p2[k] - e.p3[t]
            else:
                out[k] = x * e.p1[k] - e.p2[k] - e.p3[t]
    elif e.etype == 1:
        xt = e.X + t * d
        for k in range(K):
            q = 0.0
            for j in range(d):
                r = xt[j] - e.p1[k * d + j]
                q = q + r * r * e.p2[k * d + j]
            out[k] = e.p3[k] - 0.5 * q
    elif e.etype == 2:
        xt = e.X + t * d
        for k in range(K):
            q = 0.0
            for i in range(d):
                s = 0.0
                for j in range(i + 1):
                    s = s + e.p2[(k * d + i) * d + j] * (xt[j] - e.p1[k * d + j])
                q = q + s * s
            out[k] = e.p3[k] - 0.5 * q
    else:
        for k in range(K):
            out[k] = e.p1[k * e.M + e.codes[t]]


cdef int _emis_rows(const Emis* e, Py_ssize_t r0, Py_ssize_t r1, double* b,
                    double* m, double* logd) noexcept nogil:
    """b[t] = exp(l_t - m_t), m[t] = max_k l_t(k) for rows [r0, r1), in transposed blocks
    of EBLOCK rows (hmm_rows.h).  When ``logd`` is not NULL the log-densities are written
    there instead (no exponentials, m untouched).  Returns the number of rows whose
    densities are all zero or not finite."""
    cdef Py_ssize_t a, z, mm, i, k, K = e.K
    cdef int bad = 0
    cdef double* L = <double*> malloc(K * EBLOCK * sizeof(double))
    cdef double* row = <double*> malloc(K * sizeof(double))
    a = r0
    while a < r1:
        z = a + EBLOCK
        if z > r1:
            z = r1
        mm = z - a
        if e.etype == 1:
            hmm_diag_logdens(e.Xt, e.T, a, mm, e.d, K, e.p1, e.p2, e.p3, L)
        else:
            for i in range(mm):
                _logdens(e, a + i, row)
                for k in range(K):
                    L[k * mm + i] = row[k]
        if logd != NULL:
            hmm_max_exp(L, mm, K, logd + a * K, NULL, 1)
        else:
            bad = bad + hmm_max_exp(L, mm, K, b + a * K, m + a, 0)
        a = z
    free(row)
    free(L)
    return bad


cdef inline double _dot(const double* x, const double* y, Py_ssize_t K) noexcept nogil:
    """x . y with two partial sums (halves the dependency chain of the additions)."""
    cdef double s0 = 0.0, s1 = 0.0
    cdef Py_ssize_t i = 0
    while i + 1 < K:
        s0 = s0 + x[i] * y[i]
        s1 = s1 + x[i + 1] * y[i + 1]
        i = i + 2
    if i < K:
        s0 = s0 + x[i] * y[i]
    return s0 + s1


cdef double _forward_backward(double* b, const double* m, double* al, double* gam,
                              double* cs, Py_ssize_t n, Py_ssize_t K, const double* A,
                              const double* AT, const double* init, double* g0, double* work,
                              int backward) noexcept nogil:
    """Scaled forward-backward on one sequence of n rows (pointers at its first row).

    Returns the log-likelihood (-inf when a scale factor is zero or not finite).
    ``al`` receives the filtered probabilities alpha_t; with ``backward``, ``gam`` the
    smoothed ones and row t of ``b`` (t >= 1) is overwritten by
    w_t = b_t * beta_t / c_t, so that the expected transition counts are
    A_ij * sum_t alpha_t(i) w_(t+1)(j) (a matrix product done by the caller).
    g0 is incremented; ``AT`` is A transposed; ``work`` holds 2K doubles.

    The forward recursion carries v_t = c_t alpha_t: v_t = ((v_(t-1) A) * b_t) / c_(t-1),
    c_t = sum v_t, so the sum and the division of step t-1 run alongside the products
    of step t.  The logarithm of the product of the scale factors is taken only when the
    running product leaves [1e-200, 1e200]."""
    cdef Py_ssize_t t, i, j, k
    cdef double c, ll = 0.0, msum = 0.0, prod = 1.0, inv, sprev
    cdef double* beta = work
    cdef double* v = work + K
    cdef double* bt
    cdef double* at
    # forward
    c = 0.0
    for k in range(K):
        v[k] = init[k] * b[k]
        c = c + v[k]
    if not (c > 0.0 and isfinite(c)):
        return -INFINITY
    cs[0] = c
    prod = c
    msum = m[0]
    sprev = 1.0 / c
    for k in range(K):
        al[k] = v[k] * sprev
    for t in range(1, n):
        at = al + t * K
        bt = b + t * K
        for j in range(K):
            at[j] = _dot(v, AT + j * K, K) * bt[j]
        c = 0.0
        for j in range(K):
            at[j] = at[j] * sprev
            c = c + at[j]
        if not (c > 0.0 and c < INFINITY):
            return -INFINITY
        cs[t] = c
        msum = msum + m[t]
        prod = prod * c
        if prod < SMALL or prod > BIG:
            ll = ll + log(prod)
            prod = 1.0
        sprev = 1.0 / c
        for j in range(K):
            v[j] = at[j]
            at[j] = at[j] * sprev
    ll = ll + log(prod) + msum
    if not backward:
        return ll
    # backward
    at = al + (n - 1) * K
    for k in range(K):
        beta[k] = 1.0
        gam[(n - 1) * K + k] = at[k]
    for t in range(n - 2, -1, -1):
        bt = b + (t + 1) * K
        inv = 1.0 / cs[t + 1]
        for j in range(K):
            bt[j] = bt[j] * beta[j] * inv
        at = al + t * K
        for i in range(K):
            beta[i] = _dot(A + i * K, bt, K)
            gam[t * K + i] = at[i] * beta[i]
    for k in range(K):
        g0[k] = g0[k] + gam[k]
    return ll


cdef inline void _gemm_tn(const double* Y, Py_ssize_t ldy, const double* G, Py_ssize_t K,
                          Py_ssize_t n, double* S) noexcept nogil:
    """S (K x ldy, row-major) += G' Y for row-major G (n x K) and Y (n x ldy)."""
    cdef int im = <int> ldy, ik = <int> K, inn = <int> n
    cdef double one = 1.0
    cdef char tn = b'N'
    cdef char tt = b'T'
    if n <= 0:
        return
    dgemm(&tn, &tt, &im, &ik, &inn, &one, <double*> Y, &im, <double*> G, &ik, &one, S, &im)


cdef void _stats_rows(const Emis* e, const double* gam, Py_ssize_t r0, Py_ssize_t r1,
                      double* acc) noexcept nogil:
    """Add gamma-weighted emission statistics of rows [r0, r1) to acc (n, then sums)."""
    cdef Py_ssize_t t, k, j, i, K = e.K, d = e.d
    cdef double g, x, xj
    cdef double* sx = acc + K
    cdef double* sxx = acc + K + K * d
    cdef const double* xt
    cdef const double* gt
    for t in range(r0, r1):
        gt = gam + t * K
        for k in range(K):
            acc[k] = acc[k] + gt[k]
        if e.etype == 0:
            x = e.X[t]
            for k in range(K):
                sx[k] = sx[k] + gt[k] * x
        elif e.etype == 1:
            xt = e.X + t * d
            for k in range(K):
                g = gt[k]
                for j in range(d):
                    xj = g * xt[j]
                    sx[k * d + j] = sx[k * d + j] + xj
                    sxx[k * d + j] = sxx[k * d + j] + xj * xt[j]
        elif e.etype == 2:
            xt = e.X + t * d
            for k in range(K):
                g = gt[k]
                for i in range(d):
                    xj = g * xt[i]
                    sx[k * d + i] = sx[k * d + i] + xj
                    for j in range(d):
                        sxx[(k * d + i) * d + j] = sxx[(k * d + i) * d + j] + xj * xt[j]
        else:
            for k in range(K):
                sx[k * e.M + e.codes[t]] = sx[k * e.M + e.codes[t]] + gt[k]


cdef Emis _make_emis(int etype, const double[:, ::1] X, const double[:, ::1] Xt,
                     const int64_t[::1] codes, const double[::1] p1, const double[::1] p2,
                     const double[::1] p3, Py_ssize_t K, Py_ssize_t M):
    cdef Emis e
    e.etype = etype
    e.K = K
    e.d = X.shape[1]
    e.M = M
    e.T = X.shape[0]
    e.X = &X[0, 0]
    e.Xt = &Xt[0, 0]
    e.codes = &codes[0]
    e.p1 = &p1[0]
    e.p2 = &p2[0]
    e.p3 = &p3[0]
    return e


def estep(int etype, const double[:, ::1] X, const double[:, ::1] Xt,
          const int64_t[::1] codes,
          const double[::1] p1, const double[::1] p2, const double[::1] p3, Py_ssize_t M,
          const double[:, ::1] Y, const double[:, ::1] A, const double[:, ::1] AT,
          const double[::1] init, const int64_t[::1] seq_start, const int64_t[:, ::1] blocks,
          double[:, ::1] b, double[::1] m, double[:, ::1] al, double[:, ::1] gam,
          double[::1] cs, double[::1] seq_ll, double[:, ::1] part, int mode, int n_threads):
    """E-step (mode 1) or forward pass only (mode 0) over the given blocks.

    Each block c processes its sequences blocks[c, 0] .. blocks[c, 1] - 1 one after the
    other: emission densities (once), forward, backward (mode 1), then two matrix
    products accumulated in ``part[c]`` (zero-initialised by the caller): the K x K sums
    alpha_t w_(t+1)' (the caller multiplies them by A to get the expected transition
    counts) and the K x Y.shape[1] sums gamma_t' Y_t of the emission features
    Y = [1, x, ...] (categorical emissions: occupancies and symbol counts instead).
    ``al`` receives filtered and ``gam`` (mode 1) smoothed probabilities; ``seq_ll`` the
    log-likelihood of each sequence.
    """
    cdef Py_ssize_t K = A.shape[0]
    cdef Py_ssize_t nb = blocks.shape[0]
    cdef Py_ssize_t dy = Y.shape[1]
    cdef Py_ssize_t c, s, r0, r1, off_out = 2 + K, off_em = 2 + K + K * K
    cdef double ll
    cdef double* work
    cdef int bad
    cdef Emis e = _make_emis(etype, X, Xt, codes, p1, p2, p3, K, M)
    for c in prange(nb, nogil=True, schedule="dynamic", num_threads=n_threads):
        work = <double*> malloc(2 * K * sizeof(double))
        for s in range(blocks[c, 0], blocks[c, 1]):
            r0 = seq_start[s]
            r1 = seq_start[s + 1]
            bad = _emis_rows(&e, r0, r1, &b[0, 0], &m[0], NULL)
            if bad > 0:
                part[c, 1] = part[c, 1] + bad
                seq_ll[s] = -INFINITY
                continue
            ll = _forward_backward(&b[r0, 0], &m[r0], &al[r0, 0], &gam[r0, 0], &cs[r0],
                                   r1 - r0, K, &A[0, 0], &AT[0, 0], &init[0], &part[c, 2],
                                   work, mode)
            seq_ll[s] = ll
            if not isfinite(ll):
                part[c, 1] = part[c, 1] + 1.0
                continue
            part[c, 0] = part[c, 0] + ll
            if mode == 1:
                _gemm_tn(&b[r0 + 1, 0], K, &al[r0, 0], K, r1 - r0 - 1, &part[c, off_out])
                if etype == 3:
                    _stats_rows(&e, &gam[0, 0], r0, r1, &part[c, off_em])
                else:
                    _gemm_tn(&Y[r0, 0], dy, &gam[r0, 0], K, r1 - r0, &part[c, off_em])
        free(work)


def emission_rows(int etype, const double[:, ::1] X, const double[:, ::1] Xt,
                  const int64_t[::1] codes,
                  const double[::1] p1, const double[::1] p2, const double[::1] p3,
                  Py_ssize_t M, Py_ssize_t K, Py_ssize_t r0, Py_ssize_t r1,
                  double[:, ::1] b, double[::1] m, int log_only, int n_threads):
    """Scaled densities (or, with log_only, log-densities into b) of rows [r0, r1),
    in parallel over row chunks (``Xt``: the data transposed, used by the diagonal
    Gaussian).  Returns the number of rows with no finite density."""
    cdef Py_ssize_t nch = (r1 - r0 + CHUNK - 1) // CHUNK
    cdef Py_ssize_t ch, a, z
    cdef int bad = 0
    cdef Emis e = _make_emis(etype, X, Xt, codes, p1, p2, p3, K, M)
    for ch in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        a = r0 + ch * CHUNK
        z = a + CHUNK
        if z > r1:
            z = r1
        if log_only:
            _emis_rows(&e, a, z, &b[0, 0], &m[0], &b[0, 0])
        else:
            bad += _emis_rows(&e, a, z, &b[0, 0], &m[0], NULL)
    return bad


def forward_backward_one(const double[:, ::1] A, const double[:, ::1] AT,
                         const double[::1] init, Py_ssize_t r0, Py_ssize_t r1,
                         double[:, ::1] b, double[::1] m, double[:, ::1] al,
                         double[:, ::1] gam, double[::1] cs, double[::1] acc, int mode):
    """Forward(-backward) on the sequence of rows [r0, r1) with densities already in b, m.

    ``acc`` holds ``[loglik, n_bad, gamma_0 (K)]`` and is incremented.  Returns the
    log-likelihood."""
    cdef Py_ssize_t K = A.shape[0]
    cdef double ll
    cdef double* work = <double*> malloc(2 * K * sizeof(double))
    with nogil:
        ll = _forward_backward(&b[r0, 0], &m[r0], &al[r0, 0], &gam[r0, 0], &cs[r0], r1 - r0,
                               K, &A[0, 0], &AT[0, 0], &init[0], &acc[2], work, mode)
    free(work)
    if isfinite(ll):
        acc[0] += ll
    else:
        acc[1] += 1.0
    return ll


def stats_rows(int etype, const double[:, ::1] X, const int64_t[::1] codes, Py_ssize_t M,
               const double[:, ::1] Y, Py_ssize_t K, Py_ssize_t r0, Py_ssize_t r1,
               const double[:, ::1] al, const double[:, ::1] w, const double[:, ::1] gam,
               double[:, ::1] part, int n_threads):
    """For the sequence of rows [r0, r1) after forward-backward: one row of ``part`` per
    chunk of CHUNK rows holds the chunk's K x K sums alpha_t w_(t+1)' and its emission
    sums (layout as in :func:`estep` after the two header entries and gamma_0)."""
    cdef Py_ssize_t nch = (r1 - r0 + CHUNK - 1) // CHUNK
    cdef Py_ssize_t dy = Y.shape[1]
    cdef Py_ssize_t ch, a, z, zz
    cdef Emis e
    e.etype = etype
    e.K = K
    e.d = X.shape[1]
    e.M = M
    e.X = &X[0, 0]
    e.codes = &codes[0]
    for ch in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        a = r0 + ch * CHUNK
        z = a + CHUNK
        if z > r1:
            z = r1
        zz = z
        if zz > r1 - 1:
            zz = r1 - 1
        _gemm_tn(&w[a + 1, 0], K, &al[a, 0], K, zz - a, &part[ch, 0])
        if etype == 3:
            _stats_rows(&e, &gam[0, 0], a, z, &part[ch, K * K])
        else:
            _gemm_tn(&Y[a, 0], dy, &gam[a, 0], K, z - a, &part[ch, K * K])


cdef double _viterbi_seq(const double* ld, Py_ssize_t n, Py_ssize_t K, const double* logA,
                         const double* loginit, double* dcur, double* dnext, int* bp,
                         int64_t* path) noexcept nogil:
    cdef Py_ssize_t t, i, j
    cdef double best, v
    cdef int arg
    cdef double* tmp
    for j in range(K):
        dcur[j] = loginit[j] + ld[j]
    for t in range(1, n):
        for j in range(K):
            best = -INFINITY
            arg = 0
            for i in range(K):
                v = dcur[i] + logA[i * K + j]
                if v > best:
                    best = v
                    arg = <int> i
            dnext[j] = best + ld[t * K + j]
            bp[t * K + j] = arg
        tmp = dcur
        dcur = dnext
        dnext = tmp
    best = -INFINITY
    arg = 0
    for j in range(K):
        if dcur[j] > best:
            best = dcur[j]
            arg = <int> j
    path[n - 1] = arg
    for t in range(n - 1, 0, -1):
        path[t - 1] = bp[t * K + path[t]]
    return best


def viterbi(const double[:, ::1] logd, const double[:, ::1] logA, const double[::1] loginit,
            const int64_t[::1] seq_start, const int64_t[:, ::1] blocks, int[:, ::1] bp,
            int64_t[::1] path, double[::1] seq_logp, int n_threads):
    """Most likely state path of every sequence, given the log-densities ``logd``.

    ``seq_logp[s]`` receives the joint log-probability of sequence s and its path."""
    cdef Py_ssize_t K = logA.shape[0]
    cdef Py_ssize_t nb = blocks.shape[0]
    cdef Py_ssize_t c, s, r0, r1
    cdef double* work
    for c in prange(nb, nogil=True, schedule="dynamic", num_threads=n_threads):
        work = <double*> malloc(2 * K * sizeof(double))
        for s in range(blocks[c, 0], blocks[c, 1]):
            r0 = seq_start[s]
            r1 = seq_start[s + 1]
            seq_logp[s] = _viterbi_seq(&logd[r0, 0], r1 - r0, K, &logA[0, 0], &loginit[0],
                                       work, work + K, &bp[r0, 0], &path[r0])
        free(work)


def louis_rows(Py_ssize_t r0, Py_ssize_t r1, const double[:, ::1] al, const double[:, ::1] w,
               const double[:, ::1] gam, const double[:, ::1] A, const double[:, ::1] g,
               Py_ssize_t goff, const int64_t[::1] trow, const int64_t[::1] tcol,
               const int64_t[::1] tlast, Py_ssize_t oA, Py_ssize_t e0, Py_ssize_t q,
               double[:, ::1] mu, double[:, ::1] C, double[:, ::1] FF):
    """Louis' second moments of the complete-data score: advance over rows t in [r0, r1),
    none of them the first row of its sequence.

    Uses alpha_(t-1) (``al``), w_t = b_t beta_t / c_t (``w``), gamma_t (``gam``), the
    emission gradients g_t (row t - goff of ``g``: K blocks of q) and the transition
    coordinates (row, column, last free column of each; ``oA`` is the first).  With
    xi_t(k, l) = alpha_(t-1)(k) A_kl w_t(l) and mu(l) = E[F_(t-1) | S_(t-1) = l, y] on
    entry (F_t: complete-data score of the rows up to t), it adds to ``C`` the products
    sum_kl xi_t(k, l) mu(k) f_t(k, l)' and the same-time transition-emission products
    sum_kl xi_t(k, l) fA(k, l) g_t(l)', to ``FF`` the same-time emission products
    sum_l gamma_t(l) g_t(l) g_t(l)', and leaves mu(l) = E[F_t | S_t = l, y] (the
    posterior of the states is a Markov chain with backward transition probabilities
    xi_t(k, l) / gamma_t(l)).  Cost O(P (K^2 + K q + P_A)) per row for P coordinates.
    """
    cdef Py_ssize_t K = A.shape[0], P = mu.shape[1], PA = trow.shape[0]
    cdef Py_ssize_t t, k, l, p, a, c, pp, j, last
    cdef double x, inv, coef
    cdef const double* ap
    cdef const double* wt
    cdef const double* gt
    cdef const double* gr
    cdef double* nu = <double*> malloc(K * P * sizeof(double))
    with nogil:
        for t in range(r0, r1):
            ap = &al[t - 1, 0]
            wt = &w[t, 0]
            gt = &gam[t, 0]
            gr = &g[t - goff, 0]
            for c in range(K * P):
                nu[c] = 0.0
            for k in range(K):
                for l in range(K):
                    x = ap[k] * A[k, l] * wt[l]
                    if x != 0.0:
                        for p in range(P):
                            nu[l * P + p] = nu[l * P + p] + x * mu[k, p]
            # C: sum_l nu(l) g_t(l)'  (emission part of f_t)
            for l in range(K):
                for p in range(P):
                    x = nu[l * P + p]
                    if x != 0.0:
                        for a in range(q):
                            C[p, e0 + l * q + a] = C[p, e0 + l * q + a] + x * gr[l * q + a]
            # C: transition part of f_t, and same-time transition x emission products
            for pp in range(PA):
                k = trow[pp]
                j = tcol[pp]
                last = tlast[pp]
                coef = ap[k] * (wt[j] - wt[last])
                for p in range(P):
                    C[p, oA + pp] = C[p, oA + pp] + mu[k, p] * coef
                for a in range(q):
                    C[oA + pp, e0 + j * q + a] = (C[oA + pp, e0 + j * q + a]
                                                  + ap[k] * wt[j] * gr[j * q + a])
                    C[oA + pp, e0 + last * q + a] = (C[oA + pp, e0 + last * q + a]
                                                     - ap[k] * wt[last] * gr[last * q + a])
            # FF: same-time emission x emission
            for l in range(K):
                for a in range(q):
                    x = gt[l] * gr[l * q + a]
                    for c in range(q):
                        FF[e0 + l * q + a, e0 + l * q + c] = (FF[e0 + l * q + a, e0 + l * q + c]
                                                              + x * gr[l * q + c])
            # mu(l) = E[F_t | S_t = l, y]
            # (a state with posterior probability below GAMMA_MIN contributes nothing that
            # double precision can see; its conditional mean is set to zero)
            for l in range(K):
                if gt[l] > GAMMA_MIN:
                    inv = gt[l]
                    for p in range(P):
                        mu[l, p] = nu[l * P + p] / inv
                    for a in range(q):
                        mu[l, e0 + l * q + a] = mu[l, e0 + l * q + a] + gr[l * q + a]
                else:
                    for p in range(P):
                        mu[l, p] = 0.0
            for pp in range(PA):
                k = trow[pp]
                j = tcol[pp]
                last = tlast[pp]
                if gt[j] > GAMMA_MIN:
                    mu[j, oA + pp] = mu[j, oA + pp] + ap[k] * wt[j] / gt[j]
                if gt[last] > GAMMA_MIN:
                    mu[last, oA + pp] = mu[last, oA + pp] - ap[k] * wt[last] / gt[last]
    free(nu)
