"""Gaussian-mixture E-step for small data sets, in one call from the parameters.

:mod:`gmm_kernels` is built for many rows (chunks, threads, BLAS products) and its
caller prepares whitening factors with several numpy calls; on a few hundred rows
that preparation, not the arithmetic, is the cost of an EM iteration.  This kernel
takes the weights, means and covariances themselves, factors each covariance
(Cholesky, d is small), and in one serial pass over blocks of rows (``gmm_small.h``:
the rows transposed, each loop vectorised over a block) returns

    N_k = sum r_ik,   S1_k = sum r_ik (x_i - c),   S2_k = sum r_ik (x_i - c)(x_i - c)'

about a fixed centre c (the statistics of ``GaussianMixture.chunk_stats``) and the
log-likelihood, optionally the responsibilities and the rows' log-densities.
"""

from libc.math cimport log, exp, sqrt, fabs, INFINITY
from libc.stdlib cimport malloc, free
from scipy.linalg.cython_lapack cimport dgesvd, dsyevd
from scipy.linalg.cython_blas cimport dgemm

cdef double LOG_2PI = 1.8378770664093453

cdef extern from "gmm_small.h" nogil:
    int EMS_BLK
    int emstats_small_pass(long n, long d, long K, const double* XT, const double* c,
                           const double* L, const double* idg, const double* mu,
                           const double* logc, double* aN, double* a1, double* a2,
                           double* resp, int diag, double* work, double* ll_out)


cdef int _chol_logdet(const double* A, Py_ssize_t d, double shift, double* L,
                      double* out) noexcept nogil:
    """Lower Cholesky factor ``L`` (d x d, row-major) of A - shift I (the lower triangle
    of A read) and its log-determinant into ``out``; 1 if it is not positive definite
    (or not finite)."""
    cdef Py_ssize_t a, b, i
    cdef double q, s = 0.0
    for a in range(d):
        for b in range(a + 1):
            q = A[a * d + b] - (shift if a == b else 0.0)
            for i in range(b):
                q = q - L[a * d + i] * L[b * d + i]
            if a == b:
                if not (q > 0.0) or q - q != 0.0:
                    return 1
                L[a * d + a] = sqrt(q)
                s += log(q)
            else:
                L[a * d + b] = q / L[b * d + b]
    out[0] = s
    return 0


cdef int _below_floor(const double* A, Py_ssize_t d, double floor, double* L) noexcept nogil:
    """1 when the d x d matrix A has a non-finite entry or A - floor I is not positive
    definite (a Cholesky attempt into the scratch ``L``), else 0."""
    cdef Py_ssize_t a
    cdef double ld
    for a in range(d * d):
        if A[a] - A[a] != 0.0:
            return 1
    return _chol_logdet(A, d, floor, L, &ld)


cdef int _component_factors(Py_ssize_t K, Py_ssize_t d, const double* w, const double* cov,
                            double* L, double* logc) noexcept nogil:
    """Cholesky factors ``L`` (K x d x d) of the covariances ``cov`` and the log-normalising
    constants log w_k - d/2 log 2pi - 1/2 log det cov_k; 1 when a weight is negative or a
    covariance is not positive definite."""
    cdef Py_ssize_t k
    cdef double ld
    for k in range(K):
        if not (w[k] >= 0.0):
            return 1
        if _chol_logdet(cov + k * d * d, d, 0.0, L + k * d * d, &ld):
            return 1
        logc[k] = log(w[k]) - 0.5 * d * LOG_2PI - 0.5 * ld if w[k] > 0.0 else -INFINITY
    return 0


cdef int _pass_stats(Py_ssize_t n, Py_ssize_t d, Py_ssize_t K, const double* XT,
                     const double* c, const double* mu, const double* L, const double* logc,
                     double* idg, double* mloc, double* aN, double* a1, double* a2,
                     double* resp, bint diag, double* work, double* ll,
                     double* N, double* S1, double* S2) noexcept nogil:
    """One pass of :c:func:`emstats_small_pass` from the factors, and its statistics
    unpacked into N (K), S1 (K x d), S2 (K x d x d, symmetric); returns its status."""
    cdef Py_ssize_t k, a, b
    cdef int status
    for k in range(K):
        aN[k] = 0.0
        for a in range(d):
            idg[k * d + a] = 1.0 / L[(k * d + a) * d + a]
            mloc[k * d + a] = mu[k * d + a]
            a1[k * d + a] = 0.0
            for b in range(d):
                a2[(k * d + a) * d + b] = 0.0
    status = emstats_small_pass(n, d, K, XT, c, L, idg, mloc, logc, aN, a1, a2, resp, diag,
                                work, ll)
    if status == 0:
        for k in range(K):
            N[k] = aN[k]
            for a in range(d):
                S1[k * d + a] = a1[k * d + a]
                for b in range(d):
                    S2[(k * d + a) * d + b] = (a2[(k * d + a) * d + b] if b <= a
                                               else a2[(k * d + b) * d + a])
    return status


def small_estep(const double[:, ::1] XT, const double[::1] c, const double[::1] w,
                const double[:, ::1] mu, const double[:, :, ::1] cov,
                double[::1] N, double[:, ::1] S1, double[:, :, ::1] S2,
                double[:, ::1] resp, bint want_resp, bint diag):
    """One E-step over the rows of the data, given transposed: ``XT`` (d x n, C order).

    Parameters
    ----------
    XT : (d, n) the rows as columns; c : (d,) the centre of the statistics; w : (K,)
    weights; mu : (K, d) means; cov : (K, d, d) covariances; N, S1, S2 : outputs
    (overwritten); resp : (n, K) output when ``want_resp``; diag : only the diagonals of
    S2 (the off-diagonal entries are set to 0).

    Returns
    -------
    (loglik, status) : status 1 when a covariance is not positive definite or a weight
    is negative (the outputs are then undefined), 2 when a row has zero density.
    """
    cdef Py_ssize_t d = XT.shape[0], n = XT.shape[1], K = w.shape[0]
    cdef Py_ssize_t k
    cdef double ll = 0.0
    cdef double* L = <double*> malloc(K * d * d * sizeof(double))
    cdef double* logc = <double*> malloc(K * sizeof(double))
    cdef double* idg = <double*> malloc(K * d * sizeof(double))
    cdef double* aN = <double*> malloc(K * sizeof(double))
    cdef double* a1 = <double*> malloc(K * d * sizeof(double))
    cdef double* a2 = <double*> malloc(K * d * d * sizeof(double))
    cdef double* mloc = <double*> malloc(K * d * sizeof(double))
    cdef double* work = <double*> malloc((K + 2 * d + 3) * EMS_BLK * sizeof(double))
    cdef double* rp = NULL
    cdef int status = 0
    if (L == NULL or logc == NULL or idg == NULL or aN == NULL or a1 == NULL or a2 == NULL
            or mloc == NULL or work == NULL):
        free(L); free(logc); free(idg); free(aN); free(a1); free(a2); free(mloc); free(work)
        raise MemoryError()
    if want_resp:
        if resp.shape[0] != n or resp.shape[1] != K:
            raise ValueError("resp must have shape (n, K)")
        rp = &resp[0, 0]
    try:
        with nogil:
            status = _component_factors(K, d, &w[0], &cov[0, 0, 0], L, logc)
            if status == 0:
                status = _pass_stats(n, d, K, &XT[0, 0], &c[0], &mu[0, 0], L, logc, idg, mloc,
                                     aN, a1, a2, rp, diag, work, &ll,
                                     &N[0], &S1[0, 0], &S2[0, 0, 0])
    finally:
        free(L); free(logc); free(idg); free(aN); free(a1); free(a2); free(mloc); free(work)
    return ll, status


def below_floor(const double[:, :, ::1] cov, double floor, unsigned char[::1] bad):
    """bad[k] = 1 where cov[k] has a non-finite entry or cov[k] - floor I is not positive
    definite (its smallest eigenvalue is not above ``floor``), by a Cholesky attempt;
    returns the number of such k.  The symmetric part (lower triangle) is read."""
    cdef Py_ssize_t K = cov.shape[0], d = cov.shape[1], k, a, b, i
    cdef double q
    cdef int nbad = 0
    cdef double* L = <double*> malloc(d * d * sizeof(double))
    if L == NULL:
        raise MemoryError()
    with nogil:
        for k in range(K):
            bad[k] = _below_floor(&cov[k, 0, 0], d, floor, L)
            nbad += bad[k]
    free(L)
    return nbad


# -- the structures' M-steps: pointer kernels (row-major K x d x d stacks), shared by the
# -- per-call wrappers below and by the whole EM step of small_em_run -------------------

cdef int _singular(const double* W, const double* Nk, Py_ssize_t K, Py_ssize_t d,
                   double ridge, unsigned char* bad, double* M, double* L,
                   double* s) noexcept nogil:
    """:func:`singular_scatter` on pointers (M, L: d x d scratch, s: d); returns the number
    of singular W_k."""
    cdef Py_ssize_t k, a, b
    cdef double q, ntot = 0.0, ld
    cdef int nbad = 0
    for k in range(K):
        ntot += Nk[k]
    for a in range(d):
        q = 0.0
        for k in range(K):
            q += W[(k * d + a) * d + a]
        q = q / ntot if ntot > 0.0 else 0.0
        s[a] = sqrt(q) if q > 1e-300 else 1e-150
    for k in range(K):
        bad[k] = 0
        for a in range(d):
            for b in range(a + 1):
                q = W[(k * d + a) * d + b]
                if q != q or q - q != 0.0:
                    bad[k] = 1
                M[a * d + b] = q / (Nk[k] * s[a] * s[b])
        if bad[k] == 0 and _chol_logdet(M, d, ridge, L, &ld):
            bad[k] = 1
        nbad += bad[k]
    return nbad


def singular_scatter(const double[:, :, ::1] W, const double[::1] Nk, double ridge,
                     unsigned char[::1] bad):
    """bad[k] = 1 where the scatter matrix W_k, scaled by N_k and the pooled variances
    s_j^2 = sum_k W_k,jj / sum_k N_k, has its smallest eigenvalue not above ``ridge``
    (a Cholesky attempt of W_k / (N_k s s') - ridge I), or a non-finite entry; returns
    the number of such k."""
    cdef Py_ssize_t K = W.shape[0], d = W.shape[1]
    cdef int nbad = 0
    cdef double* M = <double*> malloc((2 * d * d + d) * sizeof(double))
    if M == NULL:
        raise MemoryError()
    with nogil:
        nbad = _singular(&W[0, 0, 0], &Nk[0], K, d, ridge, &bad[0], M, M + d * d,
                         M + 2 * d * d)
    free(M)
    return nbad


cdef inline double _new_volume(double* lam, double new, double change) noexcept nogil:
    """The volume update of the conditional maximisations: lam = new; returns the larger
    of ``change`` and its relative change (1e300 for a NaN)."""
    cdef double q = (new - lam[0]) / new
    if q < 0.0:
        q = -q
    if q > change or q != q:
        change = q if q == q else 1e300
    lam[0] = new
    return change


cdef void _shape_of(const double* w, const double* lam, Py_ssize_t K, Py_ssize_t d,
                    double* A) noexcept nogil:
    """The common shape A = sum_k w_k / lambda_k scaled to det A = 1 (w: K x d)."""
    cdef Py_ssize_t k, j
    cdef double g = 0.0, q
    for j in range(d):
        q = 0.0
        for k in range(K):
            q += w[k * d + j] / lam[k]
        A[j] = q
        g += log(q)
    g = exp(g / d)
    for j in range(d):
        A[j] = A[j] / g


cdef int _common_shape(const double* w, const double* Nk, double* lam, double* A,
                       Py_ssize_t K, Py_ssize_t d, int maxiter, double tol) noexcept nogil:
    """:func:`common_shape` on pointers (w: K x d)."""
    cdef Py_ssize_t k, j
    cdef int it = 0
    cdef double q, change
    while it < maxiter:
        it += 1
        _shape_of(w, lam, K, d, A)
        change = 0.0
        for k in range(K):
            q = 0.0
            for j in range(d):
                q += w[k * d + j] / A[j]
            change = _new_volume(&lam[k], q / (d * Nk[k]), change)
        if not (change > tol):
            break
    return it


def common_shape(const double[:, ::1] w, const double[::1] Nk, double[::1] lam,
                 double[::1] A, int maxiter, double tol):
    """The VEI / VEV conditional maximisation: alternately the common shape
    A = normalised sum_k w_k / lambda_k (det A = 1) and the volumes
    lambda_k = sum_j w_kj / A_j / (d N_k), from ``lam`` (updated in place) until the
    relative change of the volumes is below ``tol`` or ``maxiter`` iterations; ``w`` holds
    the diagonals (VEI) or eigenvalues (VEV) of the scatter matrices.  Returns the number
    of iterations."""
    cdef int it
    with nogil:
        it = _common_shape(&w[0, 0], &Nk[0], &lam[0], &A[0], w.shape[0], w.shape[1],
                           maxiter, tol)
    return it


cdef inline double _row_col(const double* A, const double* B, Py_ssize_t a, Py_ssize_t c,
                            Py_ssize_t d) noexcept nogil:
    """(A B)[a, c] of d x d row-major matrices."""
    cdef Py_ssize_t b
    cdef double t = 0.0
    for b in range(d):
        t += A[a * d + b] * B[b * d + c]
    return t


cdef void _rotated_diag(const double* W, const double* D, double* dg,
                        Py_ssize_t K, Py_ssize_t d) noexcept nogil:
    """dg[k, j] = D[:, j]' W_k D[:, j] (the diagonal of D' W_k D)."""
    cdef Py_ssize_t k, j, a
    cdef double q
    for k in range(K):
        for j in range(d):
            q = 0.0
            for a in range(d):
                q += D[a * d + j] * _row_col(W + k * d * d, D, a, j, d)
            dg[k * d + j] = q if q > 1e-300 else 1e-300


cdef void _shapes(const double* dg, const double* Nk, double n, bint eve, double* Lam,
                  Py_ssize_t K, Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t k, j
    cdef double tot = 0.0, g
    if eve:
        for k in range(K):
            g = 0.0
            for j in range(d):
                g += log(dg[k * d + j])
            g = exp(g / d)
            Lam[k * d] = g            # the determinant^(1/d), temporarily
            tot += g
        for k in range(K):
            g = Lam[k * d]
            for j in range(d):
                Lam[k * d + j] = (tot / n) * dg[k * d + j] / g
    else:
        for k in range(K):
            for j in range(d):
                Lam[k * d + j] = dg[k * d + j] / Nk[k]


cdef int _polar(Py_ssize_t d, double* G, double* V, double* sig, double* D) noexcept nogil:
    """D = -U V' (row-major) from the SVD G = U S V' of the d x d matrix G (Fortran order,
    overwritten), by one-sided Jacobi rotations of its columns (Hestenes): the orthogonal
    polar factor of G, unique for a regular G.  V: d x d, sig: d scratch.  1 where G is
    numerically singular (a singular value below 1e-8 times the largest, or not finite)
    or the sweeps did not converge: the caller uses LAPACK's SVD."""
    cdef Py_ssize_t a, c, l, p, r, sweep
    cdef double al, be, ga, x, y, zeta, t, cs, sn, smax = 0.0
    cdef bint rotated = 1
    for a in range(d):
        for c in range(d):
            V[a * d + c] = 1.0 if a == c else 0.0
    for sweep in range(60):
        rotated = 0
        for p in range(d - 1):
            for r in range(p + 1, d):
                al = 0.0
                be = 0.0
                ga = 0.0
                for a in range(d):
                    x = G[a + p * d]
                    y = G[a + r * d]
                    al += x * x
                    be += y * y
                    ga += x * y
                if not (fabs(ga) > 1e-15 * sqrt(al * be)):
                    continue
                rotated = 1
                zeta = (be - al) / (2.0 * ga)
                t = 1.0 / (fabs(zeta) + sqrt(1.0 + zeta * zeta))
                if zeta < 0.0:
                    t = -t
                cs = 1.0 / sqrt(1.0 + t * t)
                sn = cs * t
                for a in range(d):
                    x = G[a + p * d]
                    y = G[a + r * d]
                    G[a + p * d] = cs * x - sn * y
                    G[a + r * d] = sn * x + cs * y
                    x = V[a * d + p]
                    y = V[a * d + r]
                    V[a * d + p] = cs * x - sn * y
                    V[a * d + r] = sn * x + cs * y
        if not rotated:
            break
    if rotated:
        return 1
    for l in range(d):
        x = 0.0
        for a in range(d):
            x += G[a + l * d] * G[a + l * d]
        sig[l] = sqrt(x)
        if sig[l] > smax:
            smax = sig[l]
    if not (smax > 0.0) or smax - smax != 0.0:
        return 1
    for l in range(d):
        if not (sig[l] > 1e-8 * smax):
            return 1
        for a in range(d):
            G[a + l * d] = G[a + l * d] / sig[l]
    for a in range(d):
        for c in range(d):
            x = 0.0
            for l in range(d):
                x += G[a + l * d] * V[c * d + l]
            D[a * d + c] = -x
    return 0


cdef int _common_orientation(const double* W, const double* wmax, const double* Nk,
                             double n, bint eve, double* Dc, double* Lam, Py_ssize_t K,
                             Py_ssize_t d, int maxiter, double tol,
                             double* ws) noexcept nogil:
    """:func:`common_orientation` on pointers: Dc (d x d, row-major) in and out, Lam
    (K x d) out; ws: K d + 4 d^2 + d + (10 d + 16) doubles of scratch."""
    cdef Py_ssize_t a, b, c, k, l
    cdef int it = 0, info = 0, m = <int> d, lwork = <int> (10 * d + 16)
    cdef double obj, obj_old = INFINITY, q
    cdef double* dg = ws
    cdef double* G = dg + K * d
    cdef double* U = G + d * d
    cdef double* Vt = U + d * d
    cdef double* S = Vt + d * d
    cdef double* work = S + d
    cdef char job = b'A'
    _rotated_diag(W, Dc, dg, K, d)
    _shapes(dg, Nk, n, eve, Lam, K, d)
    while it < maxiter:
        it += 1
        # G (Fortran order: G[a, c] at a + c d) = sum_k (W_k - wmax_k I) D Lambda_k^-1
        for a in range(d):
            for c in range(d):
                q = 0.0
                for k in range(K):
                    obj = _row_col(W + k * d * d, Dc, a, c, d) - wmax[k] * Dc[a * d + c]
                    q += obj / Lam[k * d + c]
                G[a + c * d] = q
        for a in range(d * d):
            U[a] = G[a]
        if _polar(d, U, Vt, S, Dc):
            # numerically singular G (or no convergence): LAPACK's SVD
            dgesvd(&job, &job, &m, &m, G, &m, S, U, &m, Vt, &m, work, &lwork, &info)
            if info != 0:
                return -1
            for a in range(d):
                for c in range(d):
                    q = 0.0
                    for l in range(d):
                        q += U[a + l * d] * Vt[l + c * d]
                    Dc[a * d + c] = -q
        _rotated_diag(W, Dc, dg, K, d)
        obj = 0.0
        for k in range(K):
            for c in range(d):
                obj += dg[k * d + c] / Lam[k * d + c] + Nk[k] * log(Lam[k * d + c])
        _shapes(dg, Nk, n, eve, Lam, K, d)
        q = obj_old - obj
        if q < 0.0:
            q = -q
        if not (q > tol * (obj if obj > 0.0 else -obj)):
            break
        obj_old = obj
    return it


def common_orientation(const double[:, :, ::1] W, const double[::1] wmax,
                       const double[::1] Nk, double n, bint eve, double[:, ::1] D,
                       double[:, ::1] Lam_out, int maxiter, double tol):
    """The EVE / VVE orientation step (Browne & McNicholas' majorise-minimise iterations):
    from the orientation ``D`` (updated in place), alternately the shapes Lambda_k given D
    (``eve``: a common volume) and D = -U V' from the SVD of
    G = sum_k (W_k - wmax_k I) D Lambda_k^-1, until the relative change of the objective
    sum_k tr(D' W_k D Lambda_k^-1) + N_k log det Lambda_k is below ``tol`` or ``maxiter``
    steps; ``Lam_out`` receives the shapes given the final D.  Returns the number of steps,
    or -1 when the SVD failed (D is then undefined)."""
    cdef Py_ssize_t K = W.shape[0], d = W.shape[1]
    cdef int it
    cdef double* ws = <double*> malloc((K * d + 4 * d * d + 11 * d + 16) * sizeof(double))
    if ws == NULL:
        raise MemoryError()
    with nogil:
        it = _common_orientation(&W[0, 0, 0], &wmax[0], &Nk[0], n, eve, &D[0, 0],
                                 &Lam_out[0, 0], K, d, maxiter, tol, ws)
    free(ws)
    return it


cdef int _orientation_shape(const double* W, const double* Nk, double* lam, double* C,
                            Py_ssize_t K, Py_ssize_t d, int maxiter, double tol,
                            double* ws) noexcept nogil:
    """:func:`common_orientation_shape` on pointers (C: d x d out; ws: 3 d^2 scratch)."""
    cdef Py_ssize_t k, a, b, i
    cdef int it = 0
    cdef double q, logdet, sc, change
    cdef double* L = ws
    cdef double* Li = ws + d * d
    cdef double* Ci = ws + 2 * d * d
    while it < maxiter:
        it += 1
        # C = sum_k W_k / lambda_k; its Cholesky factor C = L L' and log det; C / det^(1/d)
        for a in range(d * d):
            C[a] = 0.0
        for k in range(K):
            for a in range(d * d):
                C[a] += W[k * d * d + a] / lam[k]
        if _chol_logdet(C, d, 0.0, L, &logdet):
            return -1
        sc = exp(logdet / d)
        for a in range(d * d):
            C[a] = C[a] / sc
        # L^-1 (lower), then (C / sc)^-1 = sc L^-T L^-1
        for a in range(d * d):
            Li[a] = 0.0
        for b in range(d):
            Li[b * d + b] = 1.0 / L[b * d + b]
            for a in range(b + 1, d):
                q = 0.0
                for i in range(b, a):
                    q += L[a * d + i] * Li[i * d + b]
                Li[a * d + b] = -q / L[a * d + a]
        for a in range(d):
            for b in range(d):
                q = 0.0
                for i in range(d):
                    q += Li[i * d + a] * Li[i * d + b]
                Ci[a * d + b] = sc * q
        change = 0.0
        for k in range(K):
            q = 0.0
            for a in range(d):
                for b in range(d):
                    q += Ci[a * d + b] * W[(k * d + b) * d + a]
            change = _new_volume(&lam[k], q / (d * Nk[k]), change)
        if not (change > tol):
            break
    return it


def common_orientation_shape(const double[:, :, ::1] W, const double[::1] Nk,
                             double[::1] lam, double[:, ::1] C, int maxiter, double tol):
    """The VEE conditional maximisation: alternately the common shape-and-orientation
    C = sum_k W_k / lambda_k scaled to det C = 1 and the volumes
    lambda_k = tr(C^-1 W_k) / (d N_k), from ``lam`` (updated in place) until the relative
    change of the volumes is below ``tol`` or ``maxiter`` iterations; ``C`` receives the
    last C.  Returns the number of iterations, -1 when C is not positive definite."""
    cdef Py_ssize_t K = W.shape[0], d = W.shape[1]
    cdef int it
    cdef double* ws = <double*> malloc(3 * d * d * sizeof(double))
    if ws == NULL:
        raise MemoryError()
    with nogil:
        it = _orientation_shape(&W[0, 0, 0], &Nk[0], &lam[0], &C[0, 0], K, d, maxiter, tol,
                                ws)
    free(ws)
    return it


cdef int _moments(Py_ssize_t K, Py_ssize_t d, const double* N, const double* S1,
                  const double* S2, const double* c, double* Nk, double* means, double* W,
                  double* covs, int kind, bint shared, double* sh,
                  double* n_out) noexcept nogil:
    """:func:`small_moments` on pointers (sh: d scratch); n into ``n_out``, returns the
    number of empty components."""
    cdef Py_ssize_t k, a, b
    cdef double n = 0.0, tiny, q, v
    cdef int nempty = 0
    for k in range(K):
        n += N[k]
    tiny = 1e-10 * (n if n > 1.0 else 1.0)
    for k in range(K):
        if N[k] <= tiny:
            Nk[k] = tiny
            nempty += 1
        else:
            Nk[k] = N[k]
        for a in range(d):
            sh[a] = S1[k * d + a] / Nk[k]
            means[k * d + a] = c[a] + sh[a]
        for a in range(d):
            for b in range(d):
                W[(k * d + a) * d + b] = S2[(k * d + a) * d + b] - Nk[k] * (sh[a] * sh[b])
    if kind >= 0:
        for a in range(K * d * d):
            covs[a] = 0.0
        if kind <= 1:
            # full (every entry) or diagonal (a == b only): pooled or per component
            for a in range(d):
                for b in range(a if kind == 1 else 0, a + 1 if kind == 1 else d):
                    if shared:
                        q = 0.0
                        for k in range(K):
                            q += W[(k * d + a) * d + b]
                        q = q / n
                        for k in range(K):
                            covs[(k * d + a) * d + b] = q
                    else:
                        for k in range(K):
                            covs[(k * d + a) * d + b] = W[(k * d + a) * d + b] / Nk[k]
        else:
            q = 0.0
            for k in range(K):
                v = 0.0
                for a in range(d):
                    v += W[(k * d + a) * d + a]
                if shared:
                    q += v
                else:
                    v = v / (Nk[k] * d)
                    for a in range(d):
                        covs[(k * d + a) * d + a] = v
            if shared:
                q = q / (n * d)
                for k in range(K):
                    for a in range(d):
                        covs[(k * d + a) * d + a] = q
    n_out[0] = n
    return nempty


def small_moments(const double[::1] N, const double[:, ::1] S1, const double[:, :, ::1] S2,
                  const double[::1] c, double[::1] Nk, double[:, ::1] means,
                  double[:, :, ::1] W, double[:, :, ::1] covs, int kind, bint shared):
    """The common part of the M-step from the statistics about the centre ``c``:
    n = sum N_k, Nk (N with the empty components, N_k <= 1e-10 max(n, 1), set to that
    bound), the means c + S1_k / Nk_k and the scatter matrices
    W_k = S2_k - Nk_k shift_k shift_k' (shift_k = S1_k / Nk_k); for the structures linear
    in their elements also their covariances (``kind`` 0 full, 1 diagonal, 2 spherical,
    ``shared`` pooled over the components, as ``LinearStructure.mstep``; -1: none).
    Returns (n, the number of empty components)."""
    cdef Py_ssize_t K = N.shape[0], d = S1.shape[1]
    cdef double n = 0.0
    cdef int nempty = 0
    cdef double* sh = <double*> malloc(d * sizeof(double))
    if sh == NULL:
        raise MemoryError()
    with nogil:
        nempty = _moments(K, d, &N[0], &S1[0, 0], &S2[0, 0, 0], &c[0], &Nk[0], &means[0, 0],
                          &W[0, 0, 0], &covs[0, 0, 0] if kind >= 0 else NULL, kind, shared,
                          sh, &n)
    free(sh)
    return n, nempty


cdef void _old_volumes(const double* old, const double* W, const double* Nk, Py_ssize_t K,
                       Py_ssize_t d, bint diagonal, double* L, double* lam) noexcept nogil:
    """The volumes det(old_k)^(1/d) of the previous covariances (of their diagonals when
    ``diagonal``), tr(W_k) / (d N_k) where old_k is not a positive definite matrix."""
    cdef Py_ssize_t k, a
    cdef double q, ld
    cdef int fail
    for k in range(K):
        if diagonal:
            q = 0.0
            for a in range(d):
                if not (old[(k * d + a) * d + a] > 0.0):
                    q = INFINITY
                    break
                q += log(old[(k * d + a) * d + a])
            fail = 0 if q - q == 0.0 else 1
            ld = q
        else:
            fail = _chol_logdet(old + k * d * d, d, 0.0, L, &ld)
        q = exp(ld / d)
        if fail or not (q > 0.0) or q - q != 0.0:
            q = 0.0
            for a in range(d):
                q += W[(k * d + a) * d + a]
            q = q / (Nk[k] * d)
        lam[k] = q


cdef int _volume_mstep(const double* W, const double* Nk, double n, const double* old,
                       int code, double* covs, Py_ssize_t K, Py_ssize_t d, int maxiter,
                       double tol, double* ws) noexcept nogil:
    """:func:`volume_mstep` on pointers; ws: 2 K + K d + 5 d^2 + d doubles."""
    cdef Py_ssize_t k, a, b
    cdef double q, tot = 0.0, ld
    cdef double* det = ws
    cdef double* lam = det + K
    cdef double* dg = lam + K
    cdef double* A = dg + K * d
    cdef double* C = A + d
    cdef double* L = C + d * d
    for a in range(K * d * d):
        covs[a] = 0.0
    if code == 0 or code == 1:
        for k in range(K):
            if code == 0:
                q = 0.0
                for a in range(d):
                    q += log(W[(k * d + a) * d + a])
                ld = q
            elif _chol_logdet(W + k * d * d, d, 0.0, L, &ld):
                return 1
            det[k] = exp(ld / d)
            tot += det[k]
        tot = tot / n
        for k in range(K):
            for a in range(d):
                if code == 0:
                    covs[(k * d + a) * d + a] = tot * (W[(k * d + a) * d + a] / det[k])
                else:
                    for b in range(d):
                        covs[(k * d + a) * d + b] = tot * (W[(k * d + a) * d + b] / det[k])
        return 0
    _old_volumes(old, W, Nk, K, d, code == 2, L, lam)
    if code == 2:
        for k in range(K):
            for a in range(d):
                dg[k * d + a] = W[(k * d + a) * d + a]
        _common_shape(dg, Nk, lam, A, K, d, maxiter, tol)
        for k in range(K):
            for a in range(d):
                covs[(k * d + a) * d + a] = lam[k] * A[a]
        return 0
    if _orientation_shape(W, Nk, lam, C, K, d, maxiter, tol, L) < 0:
        return 1
    for k in range(K):
        for a in range(d):
            for b in range(d):
                covs[(k * d + a) * d + b] = lam[k] * C[a * d + b]
    return 0


def volume_mstep(const double[:, :, ::1] W, const double[::1] Nk, double n,
                 const double[:, :, ::1] old, int code, double[:, :, ::1] covs,
                 int maxiter, double tol):
    """The M-steps of EVI (``code`` 0), EVV (1), VEI (2) and VEE (3) from the scatter
    matrices W (regular: see ``_Decomposed._regular_scatter``) into ``covs``:

    * EVI: the shapes diag(W_k) / det_k, det_k = prod_j W_k,jj^(1/d), a common volume
      sum_k det_k / n;
    * EVV: C_k = W_k / det(W_k)^(1/d), a common volume sum_k det(W_k)^(1/d) / n;
    * VEI, VEE: the conditional maximisation of :func:`common_shape` (the diagonals) and
      :func:`common_orientation_shape` (C = D A D'), from the volumes of ``old``
      (det(old_k)^(1/d); tr(W_k) / (d N_k) where that is not a positive definite
      matrix).

    Returns 0, 1 when a W_k (EVV) or the pooled VEE matrix is not positive definite
    (``covs`` is then undefined)."""
    cdef Py_ssize_t K = W.shape[0], d = W.shape[1]
    cdef int status
    cdef double* ws = <double*> malloc((2 * K + K * d + 5 * d * d + d) * sizeof(double))
    if ws == NULL:
        raise MemoryError()
    with nogil:
        status = _volume_mstep(&W[0, 0, 0], &Nk[0], n, &old[0, 0, 0], code, &covs[0, 0, 0],
                               K, d, maxiter, tol, ws)
    free(ws)
    return status


cdef int _jacobi(Py_ssize_t d, double* a, double* V) noexcept nogil:
    """Cyclic Jacobi eigen-decomposition of the symmetric d x d matrix ``a`` (overwritten:
    its diagonal ends as the eigenvalues, unordered), V the eigenvectors (columns).
    Returns the number of sweeps, -1 without convergence in 60 sweeps or for a
    non-finite entry."""
    cdef Py_ssize_t p, q, k
    cdef int sweep
    cdef double off, scale, apq, theta, t, c, s, x, y
    for p in range(d):
        for q in range(d):
            if a[p * d + q] - a[p * d + q] != 0.0:
                return -1
            V[p * d + q] = 1.0 if p == q else 0.0
    for sweep in range(60):
        off = 0.0
        scale = 0.0
        for p in range(d):
            scale += a[p * d + p] * a[p * d + p]
            for q in range(p + 1, d):
                off += a[p * d + q] * a[p * d + q]
        if not (off > 1e-34 * scale):
            return sweep
        for p in range(d - 1):
            for q in range(p + 1, d):
                apq = a[p * d + q]
                if apq == 0.0:
                    continue
                theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq)
                t = 1.0 / (fabs(theta) + sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / sqrt(t * t + 1.0)
                s = t * c
                for k in range(d):          # columns p, q: A J
                    x = a[k * d + p]
                    y = a[k * d + q]
                    a[k * d + p] = c * x - s * y
                    a[k * d + q] = s * x + c * y
                for k in range(d):          # rows p, q: J' (A J)
                    x = a[p * d + k]
                    y = a[q * d + k]
                    a[p * d + k] = c * x - s * y
                    a[q * d + k] = s * x + c * y
                a[p * d + q] = 0.0
                a[q * d + p] = 0.0
                for k in range(d):
                    x = V[k * d + p]
                    y = V[k * d + q]
                    V[k * d + p] = c * x - s * y
                    V[k * d + q] = s * x + c * y
    return -1


cdef int _eig_desc(Py_ssize_t d, const double* S, double* A, double* U, double* w,
                   double* V, Py_ssize_t* order) noexcept nogil:
    """Eigenvalues w in decreasing order and their eigenvectors (columns of V, row-major
    d x d) of the symmetric S (lower triangle read); A, U, order: scratch.  1 on failure."""
    cdef Py_ssize_t a, b, j, m
    for a in range(d):
        for b in range(a + 1):
            A[a * d + b] = S[a * d + b]
            A[b * d + a] = S[a * d + b]
    if _jacobi(d, A, U) < 0:
        return 1
    for j in range(d):
        order[j] = j
    for j in range(1, d):               # insertion sort, decreasing
        m = order[j]
        a = j
        while a > 0 and A[order[a - 1] * d + order[a - 1]] < A[m * d + m]:
            order[a] = order[a - 1]
            a -= 1
        order[a] = m
    for j in range(d):
        w[j] = A[order[j] * d + order[j]]
        for a in range(d):
            V[a * d + j] = U[a * d + order[j]]
    return 0


cdef double _det(Py_ssize_t d, const double* M, double* LU) noexcept nogil:
    """det M by Gaussian elimination with partial pivoting (LU: d x d scratch)."""
    cdef Py_ssize_t a, b, i, piv
    cdef double det = 1.0, q, best
    for a in range(d * d):
        LU[a] = M[a]
    for a in range(d):
        piv = a
        best = fabs(LU[a * d + a])
        for i in range(a + 1, d):
            if fabs(LU[i * d + a]) > best:
                best = fabs(LU[i * d + a])
                piv = i
        if best == 0.0:
            return 0.0
        if piv != a:
            det = -det
            for b in range(d):
                q = LU[a * d + b]
                LU[a * d + b] = LU[piv * d + b]
                LU[piv * d + b] = q
        det *= LU[a * d + a]
        for i in range(a + 1, d):
            q = LU[i * d + a] / LU[a * d + a]
            for b in range(a, d):
                LU[i * d + b] -= q * LU[a * d + b]
    return det


def eig_desc(const double[:, :, ::1] S, double[:, ::1] w, double[:, :, ::1] V):
    """Eigenvalues (decreasing) and eigenvectors (columns) of each symmetric S[k] (lower
    triangle read) by cyclic Jacobi rotations: for the small matrices of the covariance
    structures a few microseconds, against tens for LAPACK through numpy on a stack.
    Returns 0, or 1 for a non-finite entry or no convergence (outputs undefined)."""
    cdef Py_ssize_t K = S.shape[0], d = S.shape[1], k
    cdef int status = 0
    cdef double* A = <double*> malloc(d * d * sizeof(double))
    cdef double* U = <double*> malloc(d * d * sizeof(double))
    cdef Py_ssize_t* order = <Py_ssize_t*> malloc(d * sizeof(Py_ssize_t))
    if A == NULL or U == NULL or order == NULL:
        free(A); free(U); free(order)
        raise MemoryError()
    with nogil:
        for k in range(K):
            if _eig_desc(d, &S[k, 0, 0], A, U, &w[k, 0], &V[k, 0, 0], order):
                status = 1
                break
    free(A); free(U); free(order)
    return status


cdef int _orientation(Py_ssize_t d, const double* S, double* D, double* A, double* U,
                      double* w, Py_ssize_t* order) noexcept nogil:
    """:func:`orientation_start` on pointers (A, U: d x d, w: d scratch)."""
    cdef Py_ssize_t a, j, jmin
    if _eig_desc(d, S, A, U, w, D, order):
        return 1
    for j in range(d):
        if D[j * d + j] < 0.0:
            for a in range(d):
                D[a * d + j] = -D[a * d + j]
    if _det(d, D, A) < 0.0:
        jmin = 0
        for j in range(1, d):
            if D[j * d + j] < D[jmin * d + jmin]:
                jmin = j
        for a in range(d):
            D[a * d + jmin] = -D[a * d + jmin]
    return 0


def orientation_start(const double[:, ::1] S, double[:, ::1] D):
    """The eigenvectors of the symmetric S as columns of D in decreasing order of the
    eigenvalues, signs fixed as ``gmm._orientation``: a non-negative diagonal, then
    det D = +1 (the column with the smallest diagonal entry flipped).  Returns 0, 1 on
    failure."""
    cdef Py_ssize_t d = S.shape[0]
    cdef int status = 0
    cdef double* A = <double*> malloc((2 * d * d + d) * sizeof(double))
    cdef Py_ssize_t* order = <Py_ssize_t*> malloc(d * sizeof(Py_ssize_t))
    if A == NULL or order == NULL:
        free(A); free(order)
        raise MemoryError()
    with nogil:
        status = _orientation(d, &S[0, 0], &D[0, 0], A, A + d * d, A + 2 * d * d, order)
    free(A); free(order)
    return status


def regular_scatter(const double[:, :, ::1] W, const double[::1] Nk, double ridge,
                    bint diag, double[:, :, ::1] out, unsigned char[::1] bad):
    """``_Decomposed._regular_scatter`` in one call: ``out`` = W (only its diagonals when
    ``diag``), and where :func:`singular_scatter` finds W_k singular (``bad``) and W_k is
    finite, out_k += ridge N_k diag(s^2) with the pooled variances
    s_j^2 = max(sum_k W_k,jj / max(sum_k N_k, 1e-300), 1e-300).  Returns the number of
    singular W_k."""
    cdef Py_ssize_t K = W.shape[0], d = W.shape[1], k, a, b
    for k in range(K):
        for a in range(d):
            for b in range(d):
                out[k, a, b] = W[k, a, b] if (a == b or not diag) else 0.0
    cdef int nbad = singular_scatter(out, Nk, ridge, bad)
    if nbad == 0:
        return 0
    cdef double* var = <double*> malloc(d * sizeof(double))
    if var == NULL:
        raise MemoryError()
    _ridge_singular(&out[0, 0, 0], &Nk[0], K, d, ridge, &bad[0], var)
    free(var)
    return nbad


cdef void _ridge_singular(double* W, const double* Nk, Py_ssize_t K, Py_ssize_t d,
                          double ridge, const unsigned char* bad, double* var) noexcept nogil:
    """W_k += ridge N_k diag(s^2) where ``bad[k]`` and W_k is finite, with the pooled
    variances s_j^2 = max(sum_k W_k,jj / max(sum_k N_k, 1e-300), 1e-300) (var: d scratch)."""
    cdef Py_ssize_t k, a
    cdef double q, ntot = 0.0
    for k in range(K):
        ntot += Nk[k]
    if not (ntot > 1e-300):
        ntot = 1e-300
    for a in range(d):
        q = 0.0
        for k in range(K):
            q += W[(k * d + a) * d + a]
        q = q / ntot
        var[a] = q if q > 1e-300 else 1e-300
    for k in range(K):
        if not bad[k]:
            continue
        q = 0.0
        for a in range(d * d):
            q += W[k * d * d + a] - W[k * d * d + a]
        if q == 0.0:
            for a in range(d):
                W[(k * d + a) * d + a] = W[(k * d + a) * d + a] + ridge * Nk[k] * var[a]


cdef void _rebuild(Py_ssize_t d, const double* V, const double* ev, double scale,
                   double* out) noexcept nogil:
    """out = scale V diag(ev) V' (d x d, row-major), in the order of numpy's
    ``(scale * (V * ev)) @ V.T``."""
    cdef Py_ssize_t a, b, j
    cdef double t
    for a in range(d * d):
        out[a] = 0.0
    for a in range(d):
        for j in range(d):          # the terms in the order of j, as a dot product
            t = scale * (V[a * d + j] * ev[j])
            for b in range(d):
                out[a * d + b] += t * V[b * d + j]


#: the codes of small_em_run for the structures that are not linear in their elements
#: (``_Decomposed``); 0-2 are the linear kinds (full, diagonal, spherical)
DECOMPOSED_CODES = {"EVI": 10, "EVV": 11, "VEI": 12, "VEE": 13, "EEV": 14, "VEV": 15,
                    "EVE": 16, "VVE": 17}


cdef int _decomposed_mstep(int code, const double* W, const double* Nk, double n,
                           const double* old, double* covs, Py_ssize_t K, Py_ssize_t d,
                           int inner_maxiter, double inner_tol, int mm_maxiter,
                           double mm_tol, double* ws, Py_ssize_t* order) noexcept nogil:
    """``_Decomposed._mstep`` for regular scatter matrices W (``code``: DECOMPOSED_CODES)
    from the previous covariances ``old``; 1 where the Python M-step would take another
    branch (a failed eigen-decomposition, EVV's LU fallback, a VEE or SVD failure), which
    the caller then runs.  ws: 2 K d^2 + 4 K d + 4 K + 12 d^2 + 12 d + 16 doubles."""
    cdef Py_ssize_t k, a, j
    cdef double q
    cdef double* ev = ws                       # K x d eigenvalues
    cdef double* EV = ev + K * d               # K x d x d eigenvectors
    cdef double* A = EV + K * d * d            # d x d scratch (Jacobi)
    cdef double* U = A + d * d                 # d x d scratch (Jacobi)
    cdef double* D = U + d * d                 # d x d orientation
    cdef double* sh = D + d * d                # d: a common shape
    cdef double* lam = sh + d                  # K volumes
    cdef double* Lam = lam + K                 # K x d shapes
    cdef double* wmax = Lam + K * d            # K
    cdef double* rest = wmax + K               # the kernels' scratch
    if code <= 13:
        return _volume_mstep(W, Nk, n, old, code - 10, covs, K, d, inner_maxiter,
                             inner_tol, rest)
    if code == 16 or code == 17:
        # the warm start: the orientation of the previous (common) one
        q = 0.0
        for a in range(d * d):
            q += old[a] - old[a]
        if q == 0.0:
            if _orientation(d, old, D, A, U, sh, order):
                return 1
        else:
            for a in range(d * d):
                A[a] = 0.0
                for k in range(K):
                    A[a] += W[k * d * d + a]
            for a in range(d * d):
                EV[a] = A[a]
            if _orientation(d, EV, D, A, U, sh, order):
                return 1
    for k in range(K):
        if _eig_desc(d, W + k * d * d, A, U, ev + k * d, EV + k * d * d, order):
            return 1
    if code == 16 or code == 17:
        for k in range(K):
            wmax[k] = ev[k * d]
        if _common_orientation(W, wmax, Nk, n, code == 16, D, Lam, K, d, mm_maxiter,
                               mm_tol, rest) < 0:
            return 1
        for k in range(K):
            _rebuild(d, D, Lam + k * d, 1.0, covs + k * d * d)
        return 0
    if code == 14:                              # EEV: a common volume and shape
        for k in range(K):
            lam[k] = 1.0
        _shape_of(ev, lam, K, d, sh)
        q = 0.0
        for k in range(K):
            for j in range(d):
                q += ev[k * d + j] / sh[j]
        q = q / (n * d)
        for k in range(K):
            lam[k] = q
    else:                                       # VEV: a common shape, from the volumes
        _old_volumes(old, W, Nk, K, d, 0, A, lam)
        _common_shape(ev, Nk, lam, sh, K, d, inner_maxiter, inner_tol)
    for k in range(K):
        _rebuild(d, EV + k * d * d, sh, lam[k], covs + k * d * d)
    return 0


cdef int _collapsed_mstep(int code, double* W, const double* Nk, const double* old,
                          double* covs, Py_ssize_t K, Py_ssize_t d, double ridge,
                          const unsigned char* bad, int inner_maxiter, double inner_tol,
                          int mm_maxiter, double mm_tol, double* ws, Py_ssize_t* order,
                          double* sub) noexcept nogil:
    """``_Decomposed.mstep`` where the scatter matrices flagged ``bad`` are singular: those
    get the ridge of ``regular_scatter`` (W is updated) and their own W_k / N_k, the
    others the structure's M-step on their own rows (:func:`_decomposed_mstep` on the
    subset, gathered into ``sub``: 3 K d^2 + K doubles).  Returns its status."""
    cdef Py_ssize_t k, a, m = 0, dd = d * d
    cdef double nsub = 0.0
    cdef double* Wc = sub
    cdef double* oc = Wc + K * dd
    cdef double* cc = oc + K * dd
    cdef double* Nc = cc + K * dd
    cdef int status = 0
    _ridge_singular(W, Nk, K, d, ridge, bad, cc)
    for k in range(K):
        if bad[k]:
            for a in range(dd):
                covs[k * dd + a] = W[k * dd + a] / Nk[k]
    for k in range(K):
        if bad[k]:
            continue
        for a in range(dd):
            Wc[m * dd + a] = W[k * dd + a]
            oc[m * dd + a] = old[k * dd + a]
        Nc[m] = Nk[k]
        nsub += Nk[k]
        m += 1
    if m == 0:
        return 0
    status = _decomposed_mstep(code, Wc, Nc, nsub, oc, cc, m, d, inner_maxiter, inner_tol,
                               mm_maxiter, mm_tol, ws, order)
    if status:
        return status
    m = 0
    for k in range(K):
        if bad[k]:
            continue
        for a in range(dd):
            covs[k * dd + a] = cc[m * dd + a]
        m += 1
    return 0


cdef int _floor_repair(double* cov, Py_ssize_t d, double floor, double* ws,
                       int* iws) noexcept nogil:
    """``GaussianMixture._guard`` for one covariance below the floor: non-finite, the
    floor times the identity; else its eigenvalues (of the symmetric part, by LAPACK's
    dsyevd as ``numpy.linalg.eigh``) raised to the floor.  ws: 4 d^2 + 7 d + 1 doubles,
    iws: 5 d + 3 ints.  1 when the eigen-decomposition failed."""
    cdef Py_ssize_t a, b, j
    cdef int m = <int> d, lwork = <int> (1 + 6 * d + 2 * d * d), liwork = <int> (3 + 5 * d)
    cdef int info = 0
    cdef double* V = ws
    cdef double* ev = ws + d * d
    cdef double* work = ev + d
    cdef double* Y = work + lwork
    cdef char jobz = b'V'
    cdef char uplo = b'L'
    cdef char nt = b'N'
    cdef char tt = b'T'
    cdef double one = 1.0, zero = 0.0
    for a in range(d * d):
        if cov[a] - cov[a] != 0.0:
            for b in range(d * d):
                cov[b] = 0.0
            for b in range(d):
                cov[b * d + b] = floor
            return 0
    for a in range(d):
        for b in range(d):
            V[a * d + b] = 0.5 * (cov[a * d + b] + cov[b * d + a])
    dsyevd(&jobz, &uplo, &m, V, &m, ev, work, &lwork, iws, &liwork, &info)
    if info != 0:
        return 1
    for a in range(d):
        if ev[a] < floor:
            ev[a] = floor
    # V holds the eigenvectors as its columns in Fortran order (Z[a, j] at a + j d); the
    # row-major result R = (Z diag(ev)) Z' is, read in Fortran order, F = Z (Z diag(ev))'
    for j in range(d):
        for a in range(d):
            Y[a + j * d] = V[a + j * d] * ev[j]
    dgemm(&nt, &tt, &m, &m, &m, &one, V, &m, Y, &m, &zero, cov, &m)
    return 0


def floor_repair(double[:, ::1] cov, double floor):
    """The kernel's repair of one covariance below the floor (``GaussianMixture._guard``
    for one matrix), in place; returns 1 when the eigen-decomposition failed."""
    cdef int iws[64]
    cdef Py_ssize_t d = cov.shape[0]
    if 5 * d + 3 > 64:
        raise ValueError("d is too large")
    cdef double* ws = <double*> malloc((4 * d * d + 7 * d + 1) * sizeof(double))
    if ws == NULL:
        raise MemoryError()
    cdef int status
    with nogil:
        status = _floor_repair(&cov[0, 0], d, floor, ws, iws)
    free(ws)
    return status


cdef struct _Ctx:
    # the data, the structure and the scratch of one EM step of small_em_run
    Py_ssize_t n, d, K
    const double* XT
    const double* c
    int code, kind, inner_maxiter, mm_maxiter
    bint shared, diag, diagW, repair_floor
    double reg, floor, inner_tol, mm_tol, ridge
    double* W
    double* L
    double* a2
    double* Nk
    double* logc
    double* aN
    double* idg
    double* a1
    double* mloc
    double* sh
    double* work
    double* sub
    double* mws
    Py_ssize_t* order
    unsigned char* bad
    int* iws
    double* buf


cdef void _ctx_close(_Ctx* x) noexcept:
    free(x.W); free(x.order); free(x.bad); free(x.iws)
    x.W = NULL
    x.order = NULL
    x.bad = NULL
    x.iws = NULL


cdef int _ctx_open(_Ctx* x, const double[:, ::1] XT, const double[::1] c, Py_ssize_t K,
                   int code, bint shared, double reg, double floor, bint diag,
                   int inner_maxiter, double inner_tol, int mm_maxiter, double mm_tol,
                   double ridge, bint repair_floor, Py_ssize_t extra) noexcept:
    """Fill ``x`` and allocate its scratch, plus ``extra`` doubles at ``x.buf``; 1 when
    out of memory."""
    cdef Py_ssize_t d = XT.shape[0]
    cdef Py_ssize_t nws = (2 * K * d * d + 4 * K * d + 4 * K + 12 * d * d + 12 * d + 16
                           + 6 * K * d * d + 4 * K * d + 4 * K + 2 * d
                           + (K + 2 * d + 3) * EMS_BLK + extra)
    x.n = XT.shape[1]
    x.d = d
    x.K = K
    x.XT = &XT[0, 0]
    x.c = &c[0]
    x.code = code
    x.kind = code if code < 10 else -1
    x.shared = shared
    x.diag = diag
    x.diagW = code == 10 or code == 12
    x.repair_floor = repair_floor
    x.reg = reg
    x.floor = floor
    x.inner_maxiter = inner_maxiter
    x.inner_tol = inner_tol
    x.mm_maxiter = mm_maxiter
    x.mm_tol = mm_tol
    x.ridge = ridge
    x.W = <double*> malloc(nws * sizeof(double))
    x.order = <Py_ssize_t*> malloc(d * sizeof(Py_ssize_t))
    x.bad = <unsigned char*> malloc(K)
    x.iws = <int*> malloc((5 * d + 3) * sizeof(int))
    if x.W == NULL or x.order == NULL or x.bad == NULL or x.iws == NULL:
        _ctx_close(x)
        return 1
    x.L = x.W + K * d * d
    x.a2 = x.L + K * d * d
    x.Nk = x.a2 + K * d * d
    x.logc = x.Nk + K
    x.aN = x.logc + K
    x.idg = x.aN + K
    x.a1 = x.idg + K * d
    x.mloc = x.a1 + K * d
    x.sh = x.mloc + K * d
    x.work = x.sh + 2 * d
    x.sub = x.work + (K + 2 * d + 3) * EMS_BLK
    x.mws = x.sub + 3 * K * d * d + K
    x.buf = x.mws + 2 * K * d * d + 4 * K * d + 4 * K + 12 * d * d + 12 * d + 16
    return 0


cdef int _estep_at(_Ctx* x, const double* u, double* s, double* ll) noexcept nogil:
    """The E-step of :func:`small_estep` at the parameters ``u`` (w, means, covariances
    flat) into the statistics ``s`` (N, S1, S2 flat) and ``ll``; its status (2 also for a
    non-finite log-likelihood)."""
    cdef Py_ssize_t K = x.K, d = x.d
    cdef int status = _component_factors(K, d, u, u + K + K * d, x.L, x.logc)
    if status == 0:
        status = _pass_stats(x.n, d, K, x.XT, x.c, u + K, x.L, x.logc, x.idg, x.mloc, x.aN,
                             x.a1, x.a2, NULL, x.diag, x.work, ll, s, s + K, s + K + K * d)
    if status == 0 and ll[0] - ll[0] != 0.0:
        status = 2
    return status


cdef int _step(_Ctx* x, const double* s, const double* old, double* u, double* s_out,
               double* ll) noexcept nogil:
    """One EM step: the M-step of ``SmallEM.m_step`` from the statistics ``s`` (the
    previous covariances from the parameters ``old``) into ``u``, then :func:`_estep_at`
    there.  Status 3 where the Python M-step is needed (``u`` is then undefined)."""
    cdef Py_ssize_t K = x.K, d = x.d, k, a, b
    cdef double ntot = 0.0
    cdef double* cv = u + K + K * d
    cdef int status = 0
    if _moments(K, d, s, s + K, s + K + K * d, x.c, x.Nk, u + K, x.W, cv, x.kind, x.shared,
                x.sh, &ntot):
        return 3
    for k in range(K):
        u[k] = s[k] / ntot
    if x.code >= 10:
        if x.diagW:
            for k in range(K):
                for a in range(d):
                    for b in range(d):
                        if a != b:
                            x.W[(k * d + a) * d + b] = 0.0
        if _singular(x.W, x.Nk, K, d, x.ridge, x.bad, x.a2, x.L, x.sh):
            status = _collapsed_mstep(x.code, x.W, x.Nk, old + K + K * d, cv, K, d, x.ridge,
                                      x.bad, x.inner_maxiter, x.inner_tol, x.mm_maxiter,
                                      x.mm_tol, x.mws, x.order, x.sub)
        else:
            status = _decomposed_mstep(x.code, x.W, x.Nk, ntot, old + K + K * d, cv, K, d,
                                       x.inner_maxiter, x.inner_tol, x.mm_maxiter, x.mm_tol,
                                       x.mws, x.order)
        if status:
            return 3
    if x.reg > 0.0:
        for k in range(K):
            for a in range(d):
                cv[(k * d + a) * d + a] = cv[(k * d + a) * d + a] + x.reg
    for k in range(K):
        if _below_floor(cv + k * d * d, d, x.floor, x.L):
            if not x.repair_floor or _floor_repair(cv + k * d * d, d, x.floor, x.mws, x.iws):
                return 3
    return _estep_at(x, u, s_out, ll)


cdef inline bint _small_increase(double ll, double prev, double tol, double scale_cap,
                                 double roundoff) noexcept nogil:
    """The monitor's threshold test: ll - prev <= max(tol min(1 + |ll|, scale_cap),
    roundoff (1 + |ll|))."""
    cdef double q = 1.0 + (ll if ll > 0.0 else -ll)
    cdef double thr = tol * (q if q < scale_cap else scale_cap)
    if roundoff * q > thr:
        thr = roundoff * q
    return ll - prev <= thr


cdef Py_ssize_t _run_open(_Ctx* x, const double[:, ::1] XT, const double[::1] c,
                          double[::1] u, double[::1] s, double[::1] trace, int maxsteps,
                          int code, bint shared, double reg, double floor, bint diag,
                          int inner_maxiter, double inner_tol, int mm_maxiter, double mm_tol,
                          double ridge, bint repair_floor, int nstates) except -1:
    """The arguments of small_em_run / small_squarem_run checked and ``x`` opened with
    ``nstates`` flat states of scratch at ``x.buf``; returns P = K (1 + d + d^2)."""
    cdef Py_ssize_t d = XT.shape[0], K = u.shape[0] // (1 + d + d * d)
    cdef Py_ssize_t P = K * (1 + d + d * d)
    if u.shape[0] != P or s.shape[0] != P:
        raise ValueError("u and s must have K (1 + d + d^2) entries")
    if maxsteps > trace.shape[0]:
        raise ValueError("maxsteps exceeds the length of trace")
    if _ctx_open(x, XT, c, K, code, shared, reg, floor, diag, inner_maxiter, inner_tol,
                 mm_maxiter, mm_tol, ridge, repair_floor, nstates * P):
        raise MemoryError()
    return P


cdef inline bint _record(double* u, double* s, const double* un, const double* sn,
                         Py_ssize_t P, double* trace, int* count, double llnew, double ll,
                         double tol, double scale_cap, double roundoff) noexcept nogil:
    """The new state (un, sn) into (u, s), its log-likelihood into trace[count] (count
    incremented); whether the increase over ``ll`` is small (:func:`_small_increase`)."""
    cdef Py_ssize_t i
    for i in range(P):
        u[i] = un[i]
        s[i] = sn[i]
    trace[count[0]] = llnew
    count[0] += 1
    return _small_increase(llnew, ll, tol, scale_cap, roundoff)


def small_em_run(const double[:, ::1] XT, const double[::1] c, double[::1] u,
                 double[::1] s, int code, bint shared, double reg, double floor, bint diag,
                 double ll, int maxsteps, double tol, double scale_cap, double roundoff,
                 double[::1] trace, int inner_maxiter, double inner_tol, int mm_maxiter,
                 double mm_tol, double scatter_ridge, bint repair_floor):
    """Up to ``maxsteps`` EM steps of ``SmallEM``, each in C: from the statistics ``s``
    (N, S1, S2 about ``c``, flat) at the parameters ``u`` (weights, means, covariances,
    flat) -- both updated in place after each step -- the M-step of ``SmallEM.m_step``
    (the moments, the structure's M-step: ``code`` 0, 1, 2 the linear kinds with
    ``shared``, else ``DECOMPOSED_CODES``, with the structure's inner caps and
    ``scatter_ridge`` as ``_Decomposed``; ``reg`` on the diagonal; the floor of
    ``GaussianMixture._guard``, repaired here when ``repair_floor``), then the E-step of
    :func:`small_estep` at the new parameters.  The log-likelihood after step i goes to
    ``trace[i]``.  The loop stops after a step whose increase over the previous
    log-likelihood (``ll`` before the first) is at most the monitor's threshold
    ``max(tol min(1 + |l|, scale_cap), roundoff (1 + |l|))``, where the caller asks the
    stopping rule.

    Returns
    -------
    (steps, status) : the steps done; status 0, 3 when the next step needs the Python
    M-step (an empty component, a branch of a decomposed structure's M-step not taken
    here), 1 or 2 as :func:`small_estep`; the state is that of the last step done.
    """
    cdef Py_ssize_t P
    cdef _Ctx x
    cdef int status = 0, steps = 0, step
    cdef double llnew = 0.0
    P = _run_open(&x, XT, c, u, s, trace, maxsteps, code, shared, reg, floor, diag,
                  inner_maxiter, inner_tol, mm_maxiter, mm_tol, scatter_ridge, repair_floor, 2)
    cdef double* un = x.buf
    cdef double* sn = un + P
    with nogil:
        for step in range(maxsteps):
            status = _step(&x, &s[0], &u[0], un, sn, &llnew)
            if status:
                break
            if _record(&u[0], &s[0], un, sn, P, &trace[0], &steps, llnew, ll, tol, scale_cap,
                       roundoff):
                break
            ll = llnew
    _ctx_close(&x)
    return steps, status


def small_squarem_run(const double[:, ::1] XT, const double[::1] c, double[::1] u,
                      double[::1] s, int code, bint shared, double reg, double floor,
                      bint diag, double ll, int maxsteps, double tol, double scale_cap,
                      double roundoff, double[::1] trace, int inner_maxiter,
                      double inner_tol, int mm_maxiter, double mm_tol, double scatter_ridge,
                      bint repair_floor, double[::1] step_max):
    """Up to ``maxsteps`` SQUAREM cycles of ``SmallEM._squarem_step`` (Varadhan & Roland's
    S3, the extrapolation in the natural parameters ``u``, its EM step kept only when its
    log-likelihood is at least the second plain step's; ``step_max[0]`` the bound on the
    step length, updated), the EM steps those of :func:`small_em_run` (same arguments);
    the stop after a small increase as there.  Returns (cycles, status): status 3 when a
    cycle needs the Python M-step (the state is that before the cycle), 1 or 2 when a
    plain EM step failed."""
    cdef Py_ssize_t P, K = 0, i
    cdef _Ctx x
    cdef int status = 0, cycles = 0, cyc, st
    cdef double ll1 = 0.0, ll2 = 0.0, lle = 0.0, llq = 0.0, nr, nv, alpha, smax, lnew
    cdef bint valid
    P = _run_open(&x, XT, c, u, s, trace, maxsteps, code, shared, reg, floor, diag,
                  inner_maxiter, inner_tol, mm_maxiter, mm_tol, scatter_ridge, repair_floor, 8)
    cdef double* u1 = x.buf
    cdef double* s1 = u1 + P
    cdef double* u2 = s1 + P
    cdef double* s2 = u2 + P
    cdef double* ue = s2 + P
    cdef double* se = ue + P
    cdef double* uq = se + P
    cdef double* sq = uq + P
    cdef double* ures
    cdef double* sres
    K = x.K
    smax = step_max[0]
    with nogil:
        for cyc in range(maxsteps):
            status = _step(&x, &s[0], &u[0], u1, s1, &ll1)
            if status == 0:
                status = _step(&x, s1, u1, u2, s2, &ll2)
            if status:
                break
            ures = u2
            sres = s2
            lnew = ll2
            nr = 0.0
            nv = 0.0
            for i in range(P):
                nr += (u1[i] - u[i]) * (u1[i] - u[i])
                nv += (u2[i] - 2.0 * u1[i] + u[i]) * (u2[i] - 2.0 * u1[i] + u[i])
            nv = sqrt(nv)
            if nv - nv == 0.0 and nv > 0.0:
                alpha = sqrt(nr) / nv
                alpha = -(alpha if alpha > 1.0 else 1.0)
                if alpha < -smax:
                    alpha = -smax
                valid = 1
                for i in range(P):
                    ue[i] = (u[i] - 2.0 * alpha * (u1[i] - u[i])
                             + alpha * alpha * (u2[i] - 2.0 * u1[i] + u[i]))
                    if ue[i] - ue[i] != 0.0 or (i < K and not (ue[i] >= 0.0)):
                        valid = 0
                st = 1
                if valid and _estep_at(&x, ue, se, &lle) == 0:
                    st = _step(&x, se, ue, uq, sq, &llq)
                    if st == 3:
                        status = 3
                        break
                if st or not (llq >= ll2):
                    smax = smax / 4.0 if smax / 4.0 > 1.0 else 1.0
                else:
                    if alpha == -smax:
                        smax *= 4.0
                    ures = uq
                    sres = sq
                    lnew = llq
            if _record(&u[0], &s[0], ures, sres, P, &trace[0], &cycles, lnew, ll, tol,
                       scale_cap, roundoff):
                break
            ll = lnew
    _ctx_close(&x)
    step_max[0] = smax
    return cycles, status
