"""Hidden Markov model kernels: emission densities, scaled forward-backward, Viterbi.

The observations of all sequences are stacked in one array of T rows;
``seq_start`` (n_seq + 1 offsets) says where each sequence begins.  An iteration
is two passes:

1. The emission pass, one function per family (:func:`emission_poisson`,
   :func:`emission_gaussian_diag`, :func:`emission_gaussian_full`,
   :func:`emission_categorical`), fills the T x K matrix of scaled densities
   b_t(k) = exp(l_t(k) - m_t) and the row maxima m_t (or, for Viterbi, the
   log-densities l_t(k) themselves).  It runs in parallel over fixed chunks of CHUNK
   rows, each in transposed blocks of EBLOCK rows, with the log-density code shared
   with the mixture kernel (``emmath.h``).
2. :func:`forward_backward` reads that matrix.  Sequences are grouped by the caller
   into *blocks* of consecutive sequences (``blocks[c] = (first, last + 1)``
   sequence indices); each block owns one row of the partial-sum array ``part``,
   blocks are processed in parallel with ``prange`` and the caller reduces ``part``
   in block order.  Very long sequences form blocks of their own and are handled by
   :func:`forward_backward_one` and the row-chunked :func:`stats_rows` so that their
   statistics still use all threads.

The partitions depend only on the data, so results are bitwise identical for any
number of threads.

Scaling.  The forward variables are renormalised to sum to one at every step
(Rabiner's scaling): with c_t = sum_k (alpha_(t-1) A)_k b_t(k),
log L = sum_t (log c_t + m_t).  The backward pass reuses c_t, overwrites alpha_t by
the smoothed probability gamma_t = alpha_t * beta_t and accumulates the expected
transition counts sum_t xi_t(i, j) = sum_t alpha_t(i) A_ij b_(t+1)(j) beta_(t+1)(j)
/ c_(t+1).  Nothing underflows however long the sequence, and the memory is the
T x K arrays ``b`` and ``alpha`` plus T scale factors.  A row whose log-densities
are not finite in any state gets zero densities, so the forward pass of its sequence
stops with log-likelihood -inf.

Layout of a row of ``part`` in :func:`forward_backward`: ``[loglik, n_bad, gamma_0
(K), sum_t alpha_t w_(t+1)' (K*K), emission sums]``.  The emission sums are the
K x q matrix sum_t gamma_t' Y_t of the feature rows Y (q = Y.shape[1]; none when
q = 0), e.g. Y = [1, x] (Poisson), [1, x, x^2] (Gaussian, diagonal) or
[1, x, vec(x x')] (Gaussian, full) computed with the data centred by the caller;
then, when ``n_symbols`` > 0, the occupancies (K) and the symbol counts (K x
n_symbols) of the codes.  Both matrix products are BLAS dgemm calls on one sequence
(or one chunk of rows): small enough that the BLAS runs single-threaded, so the
result is deterministic.
"""

from cython.parallel cimport prange
from libc.math cimport log, sqrt, INFINITY, isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from scipy.linalg.cython_blas cimport dgemm

from emstats._blas import single_threaded_blas

cdef extern from "emmath.h" nogil:
    double emstats_exp_neg(double x)
    long emstats_rows_max_exp(long m, long K, double* Lt, double* row_max, double* row_sum)
    void emstats_untranspose(const double* Lt, long m, long K, double* out)
    void emstats_poisson_logdens(long m, long K, const double* counts, const double* log_xfact,
                                 const double* log_rates, const double* rates, double* Lt)
    void emstats_gauss_diag_logdens(long m, long d, long K, const double* Xt, long ldx,
                                    const double* inv_sd, const double* scaled_means,
                                    const double* log_const, double* Yt, double* Lt)
    void emstats_gauss_whitened_logdens(long m, long d, long K, const double* shift,
                                        const double* log_const, double* Yt, double* Lt)
    void emstats_tri_shift(long d, long K, const double* inv_chol, const double* means,
                           double* shift)
    void emstats_categorical_logdens(long m, long K, long M, const int64_t* codes,
                                     const double* log_probs, double* Lt)

cdef Py_ssize_t CHUNK = 4096
cdef double GAMMA_MIN = 1e-280   # smoothed probabilities below this count as zero (Louis)
cdef Py_ssize_t EBLOCK = 256      # rows per transposed block of the emission pass
cdef double BIG = 1e200
cdef double SMALL = 1e-200


def exp_nonpositive(const double[::1] x, double[::1] out):
    """The kernels' exponential (``emstats_exp_neg`` of emmath.h) of x <= 0, zero below
    -708 (for tests)."""
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out[i] = emstats_exp_neg(x[i])


def chunk_rows():
    """Rows per chunk of the row-parallel functions."""
    return CHUNK


# -- emission pass ------------------------------------------------------------------------

cdef struct Emission:
    # One family's data and parameters, by role; a family reads only its own fields.
    Py_ssize_t K          # states
    Py_ssize_t d          # dimension (Gaussian)
    Py_ssize_t T          # rows of the data
    Py_ssize_t M          # symbols (categorical)
    const double* counts      # Poisson: counts (T) and log(x!) (T)
    const double* log_xfact
    const double* log_rates   # Poisson: log rates and rates (K)
    const double* rates
    const double* X           # Gaussian full: data, row-major (T x d)
    const double* Xt          # Gaussian diagonal: data transposed (d x T)
    const double* inv_sd      # Gaussian diagonal: 1 / sd (K x d)
    const double* inv_chol    # Gaussian full: inverse Cholesky factors (K x d x d, lower)
    const double* shift       # Gaussian: whitened means, means * inv_sd or inv_chol means (K x d)
    const double* log_const   # Gaussian: log normalising constants (K)
    const int64_t* codes      # categorical: symbol codes (T)
    const double* log_probs   # categorical: log probabilities (K x M)


# log-densities Lt (K x m, transposed) of the m rows from r0; Yt: scratch of K d x EBLOCK
ctypedef void (*logdens_block)(const Emission* e, Py_ssize_t r0, Py_ssize_t m, double* Lt,
                               double* Yt) noexcept nogil


cdef void _poisson_block(const Emission* e, Py_ssize_t r0, Py_ssize_t m, double* Lt,
                         double* Yt) noexcept nogil:
    emstats_poisson_logdens(m, e.K, e.counts + r0, e.log_xfact + r0, e.log_rates, e.rates, Lt)


cdef void _gauss_diag_block(const Emission* e, Py_ssize_t r0, Py_ssize_t m, double* Lt,
                            double* Yt) noexcept nogil:
    emstats_gauss_diag_logdens(m, e.d, e.K, e.Xt + r0, e.T, e.inv_sd, e.shift, e.log_const,
                               NULL, Lt)


cdef void _gauss_full_block(const Emission* e, Py_ssize_t r0, Py_ssize_t m, double* Lt,
                            double* Yt) noexcept nogil:
    # Yt (K d x m, row-major) = W X_b', i.e. column-major (m x K d) = X_b (m x d) W' with
    # X_b row-major (column-major d x m, transposed) and W = inv_chol row-major (K d x d)
    cdef int im = <int> m, id_ = <int> e.d, iKd = <int> (e.K * e.d)
    cdef double one = 1.0, zero = 0.0
    cdef char tn = b'N'
    cdef char tt = b'T'
    dgemm(&tt, &tn, &im, &iKd, &id_, &one, <double*> (e.X + r0 * e.d), &id_,
          <double*> e.inv_chol, &id_, &zero, Yt, &im)
    emstats_gauss_whitened_logdens(m, e.d, e.K, e.shift, e.log_const, Yt, Lt)


cdef void _categorical_block(const Emission* e, Py_ssize_t r0, Py_ssize_t m, double* Lt,
                             double* Yt) noexcept nogil:
    emstats_categorical_logdens(m, e.K, e.M, e.codes + r0, e.log_probs, Lt)


cdef int _emission_chunk(logdens_block f, const Emission* e, Py_ssize_t r0, Py_ssize_t r1,
                         Py_ssize_t ywork, double* out, double* row_max,
                         int log_only) noexcept nogil:
    """Rows [r0, r1) of ``out``: b_t = exp(l_t - m_t) and ``row_max`` m_t, or with
    ``log_only`` the log-densities l_t (row_max untouched).  Rows whose log-densities are
    not finite in any state get zero densities and m_t = 0; their number is returned."""
    cdef Py_ssize_t a, z, mm, i, K = e.K
    cdef long bad = 0, nb
    cdef double* Lt = <double*> malloc((K + 1) * EBLOCK * sizeof(double))
    cdef double* rowsum = Lt + K * EBLOCK
    cdef double* Yt = NULL
    if ywork > 0:
        Yt = <double*> malloc(ywork * EBLOCK * sizeof(double))
    a = r0
    while a < r1:
        z = a + EBLOCK
        if z > r1:
            z = r1
        mm = z - a
        f(e, a, mm, Lt, Yt)
        if not log_only:
            nb = emstats_rows_max_exp(mm, K, Lt, row_max + a, rowsum)
            if nb > 0:
                bad = bad + nb
                for i in range(a, z):
                    if not isfinite(row_max[i]):
                        row_max[i] = 0.0
        emstats_untranspose(Lt, mm, K, out + a * K)
        a = z
    free(Yt)
    free(Lt)
    return <int> bad


cdef int _emission_pass(logdens_block f, const Emission* e, Py_ssize_t ywork,
                        double[:, ::1] out, double[::1] row_max, int log_only,
                        int n_threads) except -1:
    """All T rows of ``out`` in parallel over chunks of CHUNK rows."""
    cdef Py_ssize_t T = e.T
    cdef Py_ssize_t nch = (T + CHUNK - 1) // CHUNK
    cdef Py_ssize_t ch, a, z
    cdef int bad = 0
    cdef double* mp
    if out.shape[0] != T or out.shape[1] != e.K:
        raise ValueError("out must be T x K")
    if not log_only and row_max.shape[0] != T:
        raise ValueError("row_max must have T entries")
    if T == 0:
        return 0
    mp = &row_max[0]
    for ch in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        a = ch * CHUNK
        z = a + CHUNK
        if z > T:
            z = T
        bad += _emission_chunk(f, e, a, z, ywork, &out[0, 0], mp, log_only)
    return bad


cdef Emission _emission(double[:, ::1] out, Py_ssize_t d):
    cdef Emission e
    e.K = out.shape[1]
    e.T = out.shape[0]
    e.d = d
    e.M = 0
    e.counts = NULL
    e.log_xfact = NULL
    e.log_rates = NULL
    e.rates = NULL
    e.X = NULL
    e.Xt = NULL
    e.inv_sd = NULL
    e.inv_chol = NULL
    e.shift = NULL
    e.log_const = NULL
    e.codes = NULL
    e.log_probs = NULL
    return e


def emission_poisson(const double[::1] counts, const double[::1] log_xfact,
                     const double[::1] log_rates, const double[::1] rates,
                     double[:, ::1] out, double[::1] row_max, int log_only, int n_threads):
    """Poisson emissions: log f_k(x) = x log_rates[k] - rates[k] - log_xfact.

    ``counts`` and ``log_xfact`` = log(x!) have one entry per row, ``log_rates`` and
    ``rates`` one per state.  Fills ``out`` (T x K) with the scaled densities and
    ``row_max`` (T) with the row maxima, or with ``log_only`` ``out`` with the
    log-densities.  Returns the number of rows with no finite log-density."""
    cdef Emission e = _emission(out, 1)
    if (counts.shape[0] != e.T or log_xfact.shape[0] != e.T or log_rates.shape[0] != e.K
            or rates.shape[0] != e.K):
        raise ValueError("emission_poisson: inconsistent shapes")
    if e.T == 0:
        return 0
    e.counts = &counts[0]
    e.log_xfact = &log_xfact[0]
    e.log_rates = &log_rates[0]
    e.rates = &rates[0]
    return _emission_pass(_poisson_block, &e, 0, out, row_max, log_only, n_threads)


def emission_gaussian_diag(const double[:, ::1] Xt, const double[:, ::1] means,
                           const double[:, ::1] inv_var, const double[::1] log_const,
                           double[:, ::1] out, double[::1] row_max, int log_only,
                           int n_threads):
    """Gaussian emissions with diagonal covariances:
    log f_k(x) = log_const[k] - sum_j (x_j - means[k, j])^2 inv_var[k, j] / 2.

    ``Xt`` is the data transposed (d x T); ``means``, ``inv_var`` are K x d.  Outputs
    as in :func:`emission_poisson`."""
    cdef Py_ssize_t d = Xt.shape[0], K = out.shape[1], j
    cdef Emission e = _emission(out, d)
    cdef int bad
    if (Xt.shape[1] != e.T or means.shape[0] != K or means.shape[1] != d
            or inv_var.shape[0] != K or inv_var.shape[1] != d or log_const.shape[0] != K):
        raise ValueError("emission_gaussian_diag: inconsistent shapes")
    if e.T == 0 or d == 0:
        return 0
    cdef double* u = <double*> malloc(2 * K * d * sizeof(double))
    cdef const double* mu = &means[0, 0]
    cdef const double* iv = &inv_var[0, 0]
    for j in range(K * d):
        u[j] = sqrt(iv[j])
        u[K * d + j] = mu[j] * u[j]
    e.Xt = &Xt[0, 0]
    e.inv_sd = u
    e.shift = u + K * d
    e.log_const = &log_const[0]
    try:
        bad = _emission_pass(_gauss_diag_block, &e, 0, out, row_max, log_only, n_threads)
    finally:
        free(u)
    return bad


def emission_gaussian_full(const double[:, ::1] X, const double[:, ::1] means,
                           const double[:, :, ::1] inv_chol, const double[::1] log_const,
                           double[:, ::1] out, double[::1] row_max, int log_only,
                           int n_threads):
    """Gaussian emissions with full covariances Sigma_k = L_k L_k':
    log f_k(x) = log_const[k] - |inv_chol[k] (x - means[k])|^2 / 2.

    ``X`` is the data (T x d, row-major), ``means`` K x d, ``inv_chol`` the K lower
    triangular factors L_k^-1 (K x d x d, zero above the diagonal).  Outputs as in
    :func:`emission_poisson`."""
    cdef Py_ssize_t d = X.shape[1], K = out.shape[1]
    cdef Emission e = _emission(out, d)
    cdef int bad
    if (X.shape[0] != e.T or means.shape[0] != K or means.shape[1] != d
            or inv_chol.shape[0] != K or inv_chol.shape[1] != d or inv_chol.shape[2] != d
            or log_const.shape[0] != K):
        raise ValueError("emission_gaussian_full: inconsistent shapes")
    if e.T == 0 or d == 0:
        return 0
    cdef double* shift = <double*> malloc(K * d * sizeof(double))
    emstats_tri_shift(d, K, &inv_chol[0, 0, 0], &means[0, 0], shift)
    e.X = &X[0, 0]
    e.inv_chol = &inv_chol[0, 0, 0]
    e.shift = shift
    e.log_const = &log_const[0]
    try:
        with single_threaded_blas():     # dgemm inside prange
            bad = _emission_pass(_gauss_full_block, &e, K * d, out, row_max, log_only,
                                 n_threads)
    finally:
        free(shift)
    return bad


def emission_categorical(const int64_t[::1] codes, const double[:, ::1] log_probs,
                         double[:, ::1] out, double[::1] row_max, int log_only, int n_threads):
    """Categorical emissions: log f_k(x) = log_probs[k, x] for the symbol codes
    0 <= x < M of the rows (``log_probs`` K x M).  Outputs as in
    :func:`emission_poisson`."""
    cdef Emission e = _emission(out, 1)
    if codes.shape[0] != e.T or log_probs.shape[0] != e.K:
        raise ValueError("emission_categorical: inconsistent shapes")
    if e.T == 0:
        return 0
    e.M = log_probs.shape[1]
    e.codes = &codes[0]
    e.log_probs = &log_probs[0, 0]
    return _emission_pass(_categorical_block, &e, 0, out, row_max, log_only, n_threads)


# -- forward-backward and statistics --------------------------------------------------------

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




cdef void _symbol_counts(const int64_t* codes, Py_ssize_t M, Py_ssize_t K, const double* gam,
                         Py_ssize_t r0, Py_ssize_t r1, double* acc) noexcept nogil:
    """Add the occupancies (acc[:K]) and the gamma-weighted symbol counts (acc[K:], K x M)
    of rows [r0, r1)."""
    cdef Py_ssize_t t, k
    cdef const double* gt
    cdef double* cnt = acc + K
    for t in range(r0, r1):
        gt = gam + t * K
        for k in range(K):
            acc[k] = acc[k] + gt[k]
            cnt[k * M + codes[t]] = cnt[k * M + codes[t]] + gt[k]


def forward_backward(const double[:, ::1] A, const double[:, ::1] AT, const double[::1] init,
                     const int64_t[::1] seq_start, const int64_t[:, ::1] blocks,
                     double[:, ::1] b, const double[::1] m, double[:, ::1] al,
                     double[:, ::1] gam, double[::1] cs, const double[:, ::1] Y,
                     const int64_t[::1] codes, Py_ssize_t n_symbols, double[::1] seq_ll,
                     double[:, ::1] part, int mode, int n_threads):
    """E-step (mode 1) or forward pass only (mode 0) over the given blocks, from the scaled
    densities ``b`` and row maxima ``m`` of the emission pass.

    Each block c processes its sequences blocks[c, 0] .. blocks[c, 1] - 1 one after the
    other: forward, backward (mode 1), then the sums accumulated in ``part[c]``
    (zero-initialised by the caller; layout in the module docstring): the K x K sums
    alpha_t w_(t+1)' (the caller multiplies them by A to get the expected transition
    counts), the K x Y.shape[1] sums gamma_t' Y_t of the feature rows ``Y`` (T x q, or
    q = 0 for none) and, when ``n_symbols`` > 0, the occupancies and symbol counts of
    ``codes``.  ``b`` is overwritten (w_t, see :func:`forward_backward_one`); ``al``
    receives filtered and ``gam`` (mode 1) smoothed probabilities; ``seq_ll`` the
    log-likelihood of each sequence.
    """
    cdef Py_ssize_t K = A.shape[0]
    cdef Py_ssize_t nb = blocks.shape[0]
    cdef Py_ssize_t dy = Y.shape[1]
    cdef Py_ssize_t c, s, r0, r1, off_out = 2 + K, off_em = 2 + K + K * K
    cdef Py_ssize_t off_sym = off_em + K * dy
    cdef double ll
    cdef double* work
    if dy > 0 and Y.shape[0] != b.shape[0]:
        raise ValueError("Y must have one row per observation")
    if n_symbols > 0 and codes.shape[0] != b.shape[0]:
        raise ValueError("codes must have one entry per observation")
    if part.shape[1] < off_sym + (K + K * n_symbols if n_symbols > 0 else 0):
        raise ValueError("part is too narrow")
    with single_threaded_blas():     # dgemm inside prange
        for c in prange(nb, nogil=True, schedule="dynamic", num_threads=n_threads):
            work = <double*> malloc(2 * K * sizeof(double))
            for s in range(blocks[c, 0], blocks[c, 1]):
                r0 = seq_start[s]
                r1 = seq_start[s + 1]
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
                    if dy > 0:
                        _gemm_tn(&Y[r0, 0], dy, &gam[r0, 0], K, r1 - r0, &part[c, off_em])
                    if n_symbols > 0:
                        _symbol_counts(&codes[0], n_symbols, K, &gam[0, 0], r0, r1,
                                       &part[c, off_sym])
            free(work)


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




def stats_rows(const double[:, ::1] Y, const int64_t[::1] codes, Py_ssize_t n_symbols,
               Py_ssize_t r0, Py_ssize_t r1, const double[:, ::1] al, const double[:, ::1] w,
               const double[:, ::1] gam, double[:, ::1] part, int n_threads):
    """For the sequence of rows [r0, r1) after forward-backward: one row of ``part`` per
    chunk of CHUNK rows holds the chunk's K x K sums alpha_t w_(t+1)' and its emission
    sums (feature sums of ``Y``, then symbol counts of ``codes`` when ``n_symbols`` > 0;
    layout as in :func:`forward_backward` after the two header entries and gamma_0)."""
    cdef Py_ssize_t K = al.shape[1]
    cdef Py_ssize_t nch = (r1 - r0 + CHUNK - 1) // CHUNK
    cdef Py_ssize_t dy = Y.shape[1]
    cdef Py_ssize_t off_sym = K * K + K * dy
    cdef Py_ssize_t ch, a, z, zz
    if dy > 0 and Y.shape[0] < r1:
        raise ValueError("Y must have one row per observation")
    if n_symbols > 0 and codes.shape[0] < r1:
        raise ValueError("codes must have one entry per observation")
    if part.shape[0] < nch or part.shape[1] < off_sym + (K + K * n_symbols if n_symbols > 0
                                                         else 0):
        raise ValueError("part is too small")
    with single_threaded_blas():     # dgemm inside prange
        for ch in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
            a = r0 + ch * CHUNK
            z = a + CHUNK
            if z > r1:
                z = r1
            zz = z
            if zz > r1 - 1:
                zz = r1 - 1
            _gemm_tn(&w[a + 1, 0], K, &al[a, 0], K, zz - a, &part[ch, 0])
            if dy > 0:
                _gemm_tn(&Y[a, 0], dy, &gam[a, 0], K, z - a, &part[ch, K * K])
            if n_symbols > 0:
                _symbol_counts(&codes[0], n_symbols, K, &gam[0, 0], a, z, &part[ch, off_sym])


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


# -- Louis' second moments, parallel over blocks of sequences ---------------------------------

cdef Py_ssize_t LBUF = 64    # rows buffered between the BLAS updates of the Louis pass


cdef void _emission_grad(int etype, Py_ssize_t K, Py_ssize_t d, Py_ssize_t q, Py_ssize_t M,
                         const double* x, int64_t code, const double* p1, const double* p2,
                         double* z, double* g) noexcept nogil:
    """g (K x q): the gradient of each state's log-density at one row in the inference
    coordinates of its emission block.  p1, p2: Poisson rates; Gaussian (centred) means and
    inverse variances (diagonal) or inverse covariance matrices (full); categorical
    probabilities.  z: scratch of 2d doubles."""
    cdef Py_ssize_t k, j, a, b, i
    cdef double r, iv, s
    cdef const double* S
    if etype == 0:
        for k in range(K):
            g[k] = x[0] / p1[k] - 1.0
    elif etype == 1:
        for k in range(K):
            for j in range(d):
                r = x[j] - p1[k * d + j]
                iv = p2[k * d + j]
                g[k * q + j] = r * iv
                g[k * q + d + j] = 0.5 * (r * r * iv * iv - iv)
    elif etype == 2:
        for k in range(K):
            S = p2 + k * d * d
            for a in range(d):
                z[a] = x[a] - p1[k * d + a]
            for a in range(d):
                s = 0.0
                for b in range(d):
                    s = s + S[a * d + b] * z[b]
                z[d + a] = s
                g[k * q + a] = s
            i = d
            for a in range(d):
                for b in range(a + 1):
                    if a == b:
                        g[k * q + i] = 0.5 * (z[d + a] * z[d + a] - S[a * d + a])
                    else:
                        g[k * q + i] = z[d + a] * z[d + b] - S[a * d + b]
                    i = i + 1
    else:
        for k in range(K):
            for j in range(q):
                g[k * q + j] = 0.0
            if code < M - 1:
                g[k * q + code] = 1.0 / p1[k * M + code]
            else:
                for j in range(q):
                    g[k * q + j] = -1.0 / p1[k * M + M - 1]


cdef void _louis_flush(Py_ssize_t nbuf, Py_ssize_t K, Py_ssize_t P, Py_ssize_t q,
                       Py_ssize_t PA, Py_ssize_t oA, Py_ssize_t e0, const int64_t* rowptr,
                       double* NU, double* MU, double* G, double* CO, double* Mc) noexcept nogil:
    """Mc (P x P, row-major) += sum_i NU_i(l)' G_i(l) in the emission columns of each state
    l and sum_i MU_i(k)' CO_i(pp of row k) in the transition columns of each row k."""
    cdef int im, inn, ik = <int> nbuf, ldc = <int> P, lda, ldb
    cdef double one = 1.0
    cdef char tn = b'N'
    cdef char tt = b'T'
    cdef Py_ssize_t l, k, nk
    if nbuf == 0:
        return
    im = <int> q
    inn = <int> P
    lda = <int> (K * q)
    ldb = <int> (K * P)
    if q > 0:
        for l in range(K):
            dgemm(&tn, &tt, &im, &inn, &ik, &one, G + l * q, &lda, NU + l * P, &ldb, &one,
                  Mc + e0 + l * q, &ldc)
    lda = <int> PA
    for k in range(K):
        nk = rowptr[k + 1] - rowptr[k]
        if nk > 0:
            im = <int> nk
            dgemm(&tn, &tt, &im, &inn, &ik, &one, CO + rowptr[k], &lda, MU + k * P, &ldb,
                  &one, Mc + oA + rowptr[k], &ldc)


cdef void _louis_block(Py_ssize_t s0, Py_ssize_t s1, const int64_t* seq_start,
                       const double* al, const double* w, const double* gam, const double* A,
                       Py_ssize_t K, int etype, const double* X, Py_ssize_t d,
                       const int64_t* codes, Py_ssize_t M, const double* p1, const double* p2,
                       Py_ssize_t q, const double* fdelta, Py_ssize_t P,
                       const int64_t* trow, const int64_t* tcol, const int64_t* tlast,
                       const int64_t* rowptr, Py_ssize_t PA, Py_ssize_t oA, Py_ssize_t e0,
                       double* Mc, double* sc_out, double* ff, double* eg0) noexcept nogil:
    """Louis' pass over sequences s0 .. s1 - 1 (see :func:`louis_blocks`)."""
    cdef Py_ssize_t s, r0, r1, t, k, l, p, a, c, pp, j, last, nbuf = 0, Kq = K * q
    cdef double x, inv, coef
    cdef const double* ap
    cdef const double* wt
    cdef const double* gt
    cdef double* gr
    cdef double* nu
    cdef double* mup
    cdef double* scv
    cdef double* mu = <double*> malloc(K * P * sizeof(double))
    cdef double* z = <double*> malloc((2 * d + 2) * sizeof(double))
    cdef double* g0 = <double*> malloc((Kq + 1) * sizeof(double))
    cdef double* NU = <double*> malloc(LBUF * K * P * sizeof(double))
    cdef double* MU = <double*> malloc(LBUF * K * P * sizeof(double))
    cdef double* G = <double*> malloc((LBUF * Kq + 1) * sizeof(double))
    cdef double* CO = <double*> malloc((LBUF * PA + 1) * sizeof(double))
    scv = <double*> malloc(P * sizeof(double))
    for s in range(s0, s1):
        r0 = seq_start[s]
        r1 = seq_start[s + 1]
        # first row: mu(l) = d log delta_l + g_1(l); its same-time emission products
        gr = g0
        _emission_grad(etype, K, d, q, M, X + r0 * d, codes[r0] if M > 0 else 0, p1, p2, z,
                       gr)
        gt = gam + r0 * K
        for l in range(K):
            for p in range(P):
                mu[l * P + p] = fdelta[l * P + p]
            for a in range(q):
                mu[l * P + e0 + l * q + a] = mu[l * P + e0 + l * q + a] + gr[l * q + a]
                eg0[l * q + a] = eg0[l * q + a] + gt[l] * gr[l * q + a]
                x = gt[l] * gr[l * q + a]
                for c in range(q):
                    ff[(l * q + a) * q + c] = ff[(l * q + a) * q + c] + x * gr[l * q + c]
        for t in range(r0 + 1, r1):
            ap = al + (t - 1) * K
            wt = w + t * K
            gt = gam + t * K
            gr = G + nbuf * Kq
            nu = NU + nbuf * K * P
            mup = MU + nbuf * K * P
            _emission_grad(etype, K, d, q, M, X + t * d, codes[t] if M > 0 else 0, p1, p2, z,
                           gr)
            for c in range(K * P):
                mup[c] = mu[c]
                nu[c] = 0.0
            for k in range(K):
                for l in range(K):
                    x = ap[k] * A[k * K + l] * wt[l]
                    if x != 0.0:
                        for p in range(P):
                            nu[l * P + p] = nu[l * P + p] + x * mu[k * P + p]
            for pp in range(PA):
                k = trow[pp]
                j = tcol[pp]
                last = tlast[pp]
                CO[nbuf * PA + pp] = ap[k] * (wt[j] - wt[last])
                # same-time transition x emission products
                for a in range(q):
                    Mc[(oA + pp) * P + e0 + j * q + a] = (Mc[(oA + pp) * P + e0 + j * q + a]
                                                          + ap[k] * wt[j] * gr[j * q + a])
                    Mc[(oA + pp) * P + e0 + last * q + a] = (
                        Mc[(oA + pp) * P + e0 + last * q + a]
                        - ap[k] * wt[last] * gr[last * q + a])
            # same-time emission x emission products (block diagonal)
            for l in range(K):
                for a in range(q):
                    x = gt[l] * gr[l * q + a]
                    for c in range(q):
                        ff[(l * q + a) * q + c] = ff[(l * q + a) * q + c] + x * gr[l * q + c]
            # mu(l) = E[F_t | S_t = l, y]; a state of posterior probability below GAMMA_MIN
            # contributes nothing double precision can see: its conditional mean is zero
            for l in range(K):
                if gt[l] > GAMMA_MIN:
                    inv = 1.0 / gt[l]
                    for p in range(P):
                        mu[l * P + p] = nu[l * P + p] * inv
                    for a in range(q):
                        mu[l * P + e0 + l * q + a] = mu[l * P + e0 + l * q + a] + gr[l * q + a]
                else:
                    for p in range(P):
                        mu[l * P + p] = 0.0
            for pp in range(PA):
                k = trow[pp]
                j = tcol[pp]
                last = tlast[pp]
                if gt[j] > GAMMA_MIN:
                    mu[j * P + oA + pp] = mu[j * P + oA + pp] + ap[k] * wt[j] / gt[j]
                if gt[last] > GAMMA_MIN:
                    mu[last * P + oA + pp] = mu[last * P + oA + pp] - ap[k] * wt[last] / gt[last]
            nbuf = nbuf + 1
            if nbuf == LBUF:
                _louis_flush(nbuf, K, P, q, PA, oA, e0, rowptr, NU, MU, G, CO, Mc)
                nbuf = 0
        # the sequence's score E[F_T | y] = sum_l gamma_T(l) mu(l); Mc -= sc sc' / 2
        gt = gam + (r1 - 1) * K
        for p in range(P):
            x = 0.0
            for l in range(K):
                x = x + gt[l] * mu[l * P + p]
            scv[p] = x
            sc_out[p] = sc_out[p] + x
        for p in range(P):
            x = 0.5 * scv[p]
            for c in range(P):
                Mc[p * P + c] = Mc[p * P + c] - x * scv[c]
    _louis_flush(nbuf, K, P, q, PA, oA, e0, rowptr, NU, MU, G, CO, Mc)
    free(scv)
    free(CO)
    free(G)
    free(MU)
    free(NU)
    free(g0)
    free(z)
    free(mu)


def louis_blocks(const double[:, ::1] al, const double[:, ::1] w, const double[:, ::1] gam,
                 const double[:, ::1] A, const int64_t[::1] seq_start,
                 const int64_t[:, ::1] blocks, int etype, const double[:, ::1] X,
                 const int64_t[::1] codes, Py_ssize_t M, const double[::1] p1,
                 const double[::1] p2, Py_ssize_t q, const double[:, ::1] fdelta,
                 const int64_t[::1] trow, const int64_t[::1] tcol, const int64_t[::1] tlast,
                 const int64_t[::1] rowptr, Py_ssize_t oA, Py_ssize_t e0,
                 double[:, :, ::1] Mpart, double[:, ::1] spart, double[:, :, ::1] ffpart,
                 double[:, ::1] eg0part, int n_threads):
    """Louis' second moments of the complete-data score, exactly, after forward-backward.

    Uses alpha (``al``), w_t = b_t beta_t / c_t (``w``) and gamma (``gam``) of the
    E-step, the emission gradients computed here row by row from the data ``X`` (T x d;
    Gaussian data centred like the means in ``p1``) or ``codes`` (categorical, ``M``
    symbols; M = 0 otherwise) and the transition coordinates (row, column and last free
    column of each, ``rowptr``: where each row's coordinates start; ``oA`` is the first,
    ``e0`` the first emission coordinate, ``q`` per state).  ``fdelta`` (K x P) holds
    d log delta_l.  Block c (sequences blocks[c, 0] .. blocks[c, 1] - 1) accumulates, in
    ``Mpart[c]`` (P x P), the cross-time products sum_kl xi_t(k, l) mu_(t-1)(k) f_t(k, l)',
    the same-time transition x emission products and -sc sc' / 2 for each sequence score
    sc; in ``spart[c]`` the scores; in ``ffpart[c]`` (K x q x q) the same-time emission
    products sum_t gamma_t(l) g_t(l) g_t(l)'; and in ``eg0part[c]`` (K q) the sums
    gamma_1(l) g_1(l) at the first rows.  With xi_t(k, l) = alpha_(t-1)(k) A_kl w_t(l) and
    mu_t(l) = E[F_t | S_t = l, y] carried forward (the posterior of the states is a Markov
    chain with backward transition probabilities xi_t(k, l) / gamma_t(l)).  Blocks run
    in parallel (``prange``) into their own partial sums, which the caller reduces in
    block order: the result does not depend on the number of threads.  Cost
    O(P (K^2 + K q + P_A)) per row, the cross-time products as BLAS calls on buffers of
    rows (each within one thread).
    """
    cdef Py_ssize_t K = A.shape[0], P = fdelta.shape[1], PA = trow.shape[0]
    cdef Py_ssize_t nb = blocks.shape[0], d = X.shape[1] if etype != 3 else 0, c
    if al.shape[0] != X.shape[0] and etype != 3:
        raise ValueError("X must have one row per observation")
    if M > 0 and codes.shape[0] != al.shape[0]:
        raise ValueError("codes must have one entry per observation")
    if (Mpart.shape[0] < nb or Mpart.shape[1] != P or Mpart.shape[2] != P
            or spart.shape[1] != P or ffpart.shape[1] != K * q or eg0part.shape[1] != K * q):
        raise ValueError("louis_blocks: inconsistent shapes")
    if rowptr.shape[0] != K + 1 or fdelta.shape[0] != K:
        raise ValueError("louis_blocks: rowptr needs K + 1 entries and fdelta K rows")
    if nb == 0:
        return
    with single_threaded_blas():     # dgemm inside prange
        for c in prange(nb, nogil=True, schedule="dynamic", num_threads=n_threads):
            _louis_block(blocks[c, 0], blocks[c, 1], &seq_start[0], &al[0, 0], &w[0, 0],
                         &gam[0, 0], &A[0, 0], K, etype, &X[0, 0], d, &codes[0], M, &p1[0],
                         &p2[0], q, &fdelta[0, 0], P, &trow[0] if PA > 0 else NULL,
                         &tcol[0] if PA > 0 else NULL, &tlast[0] if PA > 0 else NULL,
                         &rowptr[0], PA, oA, e0, &Mpart[c, 0, 0], &spart[c, 0],
                         &ffpart[c, 0, 0], &eg0part[c, 0])
