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
from scipy.linalg.cython_lapack cimport dgesvd

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


def singular_scatter(const double[:, :, ::1] W, const double[::1] Nk, double ridge,
                     unsigned char[::1] bad):
    """bad[k] = 1 where the scatter matrix W_k, scaled by N_k and the pooled variances
    s_j^2 = sum_k W_k,jj / sum_k N_k, has its smallest eigenvalue not above ``ridge``
    (a Cholesky attempt of W_k / (N_k s s') - ridge I), or a non-finite entry; returns
    the number of such k."""
    cdef Py_ssize_t K = W.shape[0], d = W.shape[1], k, a, b, i
    cdef double q, ntot = 0.0
    cdef int nbad = 0
    cdef double* L = <double*> malloc(d * d * sizeof(double))
    cdef double* s = <double*> malloc(d * sizeof(double))
    if L == NULL or s == NULL:
        free(L); free(s)
        raise MemoryError()
    with nogil:
        for k in range(K):
            ntot += Nk[k]
        for a in range(d):
            q = 0.0
            for k in range(K):
                q += W[k, a, a]
            q = q / ntot if ntot > 0.0 else 0.0
            s[a] = sqrt(q) if q > 1e-300 else 1e-150
        for k in range(K):
            bad[k] = 0
            for a in range(d):
                for b in range(a + 1):
                    q = W[k, a, b]
                    if q != q or q - q != 0.0:
                        bad[k] = 1
            if bad[k] == 0:
                for a in range(d):
                    for b in range(a + 1):
                        q = W[k, a, b] / (Nk[k] * s[a] * s[b]) - (ridge if a == b else 0.0)
                        for i in range(b):
                            q = q - L[a * d + i] * L[b * d + i]
                        if a == b:
                            if not (q > 0.0):
                                bad[k] = 1
                                break
                            L[a * d + a] = sqrt(q)
                        else:
                            L[a * d + b] = q / L[b * d + b]
                    if bad[k]:
                        break
            nbad += bad[k]
    free(L); free(s)
    return nbad


def common_shape(const double[:, ::1] w, const double[::1] Nk, double[::1] lam,
                 double[::1] A, int maxiter, double tol):
    """The VEI / VEV conditional maximisation: alternately the common shape
    A = normalised sum_k w_k / lambda_k (det A = 1) and the volumes
    lambda_k = sum_j w_kj / A_j / (d N_k), from ``lam`` (updated in place) until the
    relative change of the volumes is below ``tol`` or ``maxiter`` iterations; ``w`` holds
    the diagonals (VEI) or eigenvalues (VEV) of the scatter matrices.  Returns the number
    of iterations."""
    cdef Py_ssize_t K = w.shape[0], d = w.shape[1], k, j
    cdef int it = 0
    cdef double g, q, change, new
    with nogil:
        while it < maxiter:
            it += 1
            g = 0.0
            for j in range(d):
                q = 0.0
                for k in range(K):
                    q += w[k, j] / lam[k]
                A[j] = q
                g += log(q)
            g = exp(g / d)
            for j in range(d):
                A[j] = A[j] / g
            change = 0.0
            for k in range(K):
                q = 0.0
                for j in range(d):
                    q += w[k, j] / A[j]
                new = q / (d * Nk[k])
                q = (new - lam[k]) / new
                if q < 0.0:
                    q = -q
                if q > change or q != q:
                    change = q if q == q else 1e300
                lam[k] = new
            if not (change > tol):
                break
    return it


cdef void _rotated_diag(const double[:, :, ::1] W, const double* D, double* dg,
                        Py_ssize_t K, Py_ssize_t d) noexcept nogil:
    """dg[k, j] = D[:, j]' W_k D[:, j] (the diagonal of D' W_k D)."""
    cdef Py_ssize_t k, j, a, b
    cdef double q, t
    for k in range(K):
        for j in range(d):
            q = 0.0
            for a in range(d):
                t = 0.0
                for b in range(d):
                    t += W[k, a, b] * D[b * d + j]
                q += D[a * d + j] * t
            dg[k * d + j] = q if q > 1e-300 else 1e-300


cdef void _shapes(const double* dg, const double[::1] Nk, double n, bint eve, double* Lam,
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


def common_orientation(const double[:, :, ::1] W, const double[::1] wmax,
                       const double[::1] Nk, double n, bint eve, double[:, ::1] D,
                       double[:, ::1] Lam_out, int maxiter, double tol):
    """The EVE / VVE orientation step (Browne & McNicholas' majorise-minimise iterations):
    from the orientation ``D`` (updated in place), alternately the shapes Lambda_k given D
    (``eve``: a common volume) and D = -U V' from the SVD of
    G = sum_k (W_k - wmax_k I) D Lambda_k^-1, until the relative change of the objective
    sum_k tr(D' W_k D Lambda_k^-1) + N_k log det Lambda_k is below ``tol`` or ``maxiter``
    steps; ``Lam_out`` receives the shapes given the final D.  Returns the number of steps,
    or -1 when the SVD failed (D is then the last good orientation)."""
    cdef Py_ssize_t K = W.shape[0], d = W.shape[1], k, a, b, c, l
    cdef int it = 0, info = 0, m = <int> d, lwork = <int> (10 * d + 16)
    cdef double obj, obj_old = INFINITY, q
    cdef double* Dc = <double*> malloc(d * d * sizeof(double))
    cdef double* dg = <double*> malloc(K * d * sizeof(double))
    cdef double* Lam = <double*> malloc(K * d * sizeof(double))
    cdef double* G = <double*> malloc(d * d * sizeof(double))
    cdef double* U = <double*> malloc(d * d * sizeof(double))
    cdef double* Vt = <double*> malloc(d * d * sizeof(double))
    cdef double* S = <double*> malloc(d * sizeof(double))
    cdef double* work = <double*> malloc(lwork * sizeof(double))
    cdef char job = b'A'
    if (Dc == NULL or dg == NULL or Lam == NULL or G == NULL or U == NULL or Vt == NULL
            or S == NULL or work == NULL):
        free(Dc); free(dg); free(Lam); free(G); free(U); free(Vt); free(S); free(work)
        raise MemoryError()
    with nogil:
        for a in range(d):
            for b in range(d):
                Dc[a * d + b] = D[a, b]
        _rotated_diag(W, Dc, dg, K, d)
        _shapes(dg, Nk, n, eve, Lam, K, d)
        while it < maxiter:
            it += 1
            # G (Fortran order: G[a, c] at a + c d) = sum_k (W_k - wmax_k I) D Lambda_k^-1
            for a in range(d):
                for c in range(d):
                    q = 0.0
                    for k in range(K):
                        obj = 0.0
                        for b in range(d):
                            obj += W[k, a, b] * Dc[b * d + c]
                        obj -= wmax[k] * Dc[a * d + c]
                        q += obj / Lam[k * d + c]
                    G[a + c * d] = q
            dgesvd(&job, &job, &m, &m, G, &m, S, U, &m, Vt, &m, work, &lwork, &info)
            if info != 0:
                it = -1
                break
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
        for a in range(d):
            for b in range(d):
                D[a, b] = Dc[a * d + b]
        for k in range(K):
            for c in range(d):
                Lam_out[k, c] = Lam[k * d + c]
    free(Dc); free(dg); free(Lam); free(G); free(U); free(Vt); free(S); free(work)
    return it


def common_orientation_shape(const double[:, :, ::1] W, const double[::1] Nk,
                             double[::1] lam, double[:, ::1] C, int maxiter, double tol):
    """The VEE conditional maximisation: alternately the common shape-and-orientation
    C = sum_k W_k / lambda_k scaled to det C = 1 and the volumes
    lambda_k = tr(C^-1 W_k) / (d N_k), from ``lam`` (updated in place) until the relative
    change of the volumes is below ``tol`` or ``maxiter`` iterations; ``C`` receives the
    last C.  Returns the number of iterations, -1 when C is not positive definite."""
    cdef Py_ssize_t K = W.shape[0], d = W.shape[1], k, a, b, i
    cdef int it = 0
    cdef double q, logdet, sc, change, new
    cdef double* L = <double*> malloc(d * d * sizeof(double))
    cdef double* Li = <double*> malloc(d * d * sizeof(double))
    cdef double* Ci = <double*> malloc(d * d * sizeof(double))
    if L == NULL or Li == NULL or Ci == NULL:
        free(L); free(Li); free(Ci)
        raise MemoryError()
    with nogil:
        while it < maxiter:
            it += 1
            for a in range(d):
                for b in range(d):
                    q = 0.0
                    for k in range(K):
                        q += W[k, a, b] / lam[k]
                    C[a, b] = q
            # Cholesky C = L L', log det, then scale C to det 1
            logdet = 0.0
            for a in range(d):
                for b in range(a + 1):
                    q = C[a, b]
                    for i in range(b):
                        q = q - L[a * d + i] * L[b * d + i]
                    if a == b:
                        if not (q > 0.0):
                            it = -1
                            break
                        L[a * d + a] = sqrt(q)
                        logdet += log(q)
                    else:
                        L[a * d + b] = q / L[b * d + b]
                if it < 0:
                    break
            if it < 0:
                break
            sc = exp(logdet / d)
            for a in range(d):
                for b in range(d):
                    C[a, b] = C[a, b] / sc
            # L^-1 (lower), then (C / sc)^-1 = sc L^-T L^-1
            for a in range(d):
                for b in range(d):
                    Li[a * d + b] = 0.0
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
                        q += Ci[a * d + b] * W[k, b, a]
                new = q / (d * Nk[k])
                q = (new - lam[k]) / new
                if q < 0.0:
                    q = -q
                if q > change or q != q:
                    change = q if q == q else 1e300
                lam[k] = new
            if not (change > tol):
                break
    free(L); free(Li); free(Ci)
    return it


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
    cdef Py_ssize_t K = N.shape[0], d = S1.shape[1], k, a, b
    cdef double n = 0.0, tiny, q, v
    cdef int nempty = 0
    cdef double* sh = <double*> malloc(d * sizeof(double))
    if sh == NULL:
        raise MemoryError()
    with nogil:
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
                sh[a] = S1[k, a] / Nk[k]
                means[k, a] = c[a] + sh[a]
            for a in range(d):
                for b in range(d):
                    W[k, a, b] = S2[k, a, b] - Nk[k] * (sh[a] * sh[b])
        if kind >= 0:
            for k in range(K):
                for a in range(d):
                    for b in range(d):
                        covs[k, a, b] = 0.0
            if kind <= 1:
                # full (every entry) or diagonal (a == b only): pooled or per component
                for a in range(d):
                    for b in range(a if kind == 1 else 0, a + 1 if kind == 1 else d):
                        if shared:
                            q = 0.0
                            for k in range(K):
                                q += W[k, a, b]
                            q = q / n
                            for k in range(K):
                                covs[k, a, b] = q
                        else:
                            for k in range(K):
                                covs[k, a, b] = W[k, a, b] / Nk[k]
            else:
                q = 0.0
                for k in range(K):
                    v = 0.0
                    for a in range(d):
                        v += W[k, a, a]
                    if shared:
                        q += v
                    else:
                        v = v / (Nk[k] * d)
                        for a in range(d):
                            covs[k, a, a] = v
                if shared:
                    q = q / (n * d)
                    for k in range(K):
                        for a in range(d):
                            covs[k, a, a] = q
    free(sh)
    return n, nempty


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
    cdef Py_ssize_t K = W.shape[0], d = W.shape[1], k, a, b
    cdef double q, tot = 0.0, ld
    cdef int status = 0, it
    cdef double* L = <double*> malloc(d * d * sizeof(double))
    cdef double* det = <double*> malloc(K * sizeof(double))
    if L == NULL or det == NULL:
        free(L); free(det)
        raise MemoryError()
    import numpy as np
    lam = np.empty(K)
    cdef double[::1] lv = lam
    with nogil:
        for k in range(K):
            for a in range(d):
                for b in range(d):
                    covs[k, a, b] = 0.0
        if code == 0 or code == 1:
            for k in range(K):
                if code == 0:
                    q = 0.0
                    for a in range(d):
                        q += log(W[k, a, a])
                    ld = q
                elif _chol_logdet(&W[k, 0, 0], d, 0.0, L, &ld):
                    status = 1
                    break
                det[k] = exp(ld / d)
                tot += det[k]
            if status == 0:
                tot = tot / n
                for k in range(K):
                    for a in range(d):
                        if code == 0:
                            covs[k, a, a] = tot * (W[k, a, a] / det[k])
                        else:
                            for b in range(d):
                                covs[k, a, b] = tot * (W[k, a, b] / det[k])
        else:
            for k in range(K):
                if code == 2:
                    q = 0.0
                    for a in range(d):
                        if not (old[k, a, a] > 0.0):
                            q = INFINITY
                            break
                        q += log(old[k, a, a])
                    it = 0 if q - q == 0.0 else 1
                    ld = q
                else:
                    it = _chol_logdet(&old[k, 0, 0], d, 0.0, L, &ld)
                q = exp(ld / d)
                if it or not (q > 0.0) or q - q != 0.0:
                    q = 0.0
                    for a in range(d):
                        q += W[k, a, a]
                    q = q / (Nk[k] * d)
                lv[k] = q
    free(L); free(det)
    if status or code < 2:
        return status
    if code == 2:
        dg = np.ascontiguousarray(np.diagonal(W, axis1=1, axis2=2))
        A = np.empty(d)
        common_shape(dg, Nk, lam, A, maxiter, tol)
        for k in range(K):
            for a in range(d):
                covs[k, a, a] = lv[k] * A[a]
        return 0
    C = np.empty((d, d))
    if common_orientation_shape(W, Nk, lam, C, maxiter, tol) < 0:
        return 1
    cdef double[:, ::1] Cv = C
    for k in range(K):
        for a in range(d):
            for b in range(d):
                covs[k, a, b] = lv[k] * Cv[a, b]
    return 0


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


def orientation_start(const double[:, ::1] S, double[:, ::1] D):
    """The eigenvectors of the symmetric S as columns of D in decreasing order of the
    eigenvalues, signs fixed as ``gmm._orientation``: a non-negative diagonal, then
    det D = +1 (the column with the smallest diagonal entry flipped).  Returns 0, 1 on
    failure."""
    cdef Py_ssize_t d = S.shape[0], a, j, jmin
    cdef int status = 0
    cdef double* A = <double*> malloc(d * d * sizeof(double))
    cdef double* U = <double*> malloc(d * d * sizeof(double))
    cdef double* w = <double*> malloc(d * sizeof(double))
    cdef Py_ssize_t* order = <Py_ssize_t*> malloc(d * sizeof(Py_ssize_t))
    if A == NULL or U == NULL or w == NULL or order == NULL:
        free(A); free(U); free(w); free(order)
        raise MemoryError()
    with nogil:
        status = _eig_desc(d, &S[0, 0], A, U, w, &D[0, 0], order)
        if status == 0:
            for j in range(d):
                if D[j, j] < 0.0:
                    for a in range(d):
                        D[a, j] = -D[a, j]
            if _det(d, &D[0, 0], A) < 0.0:
                jmin = 0
                for j in range(1, d):
                    if D[j, j] < D[jmin, jmin]:
                        jmin = j
                for a in range(d):
                    D[a, jmin] = -D[a, jmin]
    free(A); free(U); free(w); free(order)
    return status


def regular_scatter(const double[:, :, ::1] W, const double[::1] Nk, double ridge,
                    bint diag, double[:, :, ::1] out, unsigned char[::1] bad):
    """``_Decomposed._regular_scatter`` in one call: ``out`` = W (only its diagonals when
    ``diag``), and where :func:`singular_scatter` finds W_k singular (``bad``) and W_k is
    finite, out_k += ridge N_k diag(s^2) with the pooled variances
    s_j^2 = max(sum_k W_k,jj / max(sum_k N_k, 1e-300), 1e-300).  Returns the number of
    singular W_k."""
    cdef Py_ssize_t K = W.shape[0], d = W.shape[1], k, a, b
    cdef double q, ntot = 0.0
    cdef int finite
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
    for k in range(K):
        ntot += Nk[k]
    if not (ntot > 1e-300):
        ntot = 1e-300
    for a in range(d):
        q = 0.0
        for k in range(K):
            q += out[k, a, a]
        q = q / ntot
        var[a] = q if q > 1e-300 else 1e-300
    for k in range(K):
        if not bad[k]:
            continue
        finite = 1
        for a in range(d):
            for b in range(d):
                if out[k, a, b] - out[k, a, b] != 0.0:
                    finite = 0
        if finite:
            for a in range(d):
                out[k, a, a] = out[k, a, a] + ridge * Nk[k] * var[a]
    free(var)
    return nbad


def small_em_linear(const double[:, ::1] XT, const double[::1] c, const double[::1] N,
                    const double[:, ::1] S1, const double[:, :, ::1] S2, int kind,
                    bint shared, double reg, double floor, bint diag,
                    double[::1] w_out, double[:, ::1] mu_out, double[:, :, ::1] cov_out,
                    double[::1] N_out, double[:, ::1] S1_out, double[:, :, ::1] S2_out):
    """One EM step of a structure linear in its elements (``kind`` and ``shared`` as in
    :func:`small_moments`) in one call: from the statistics (N, S1, S2) about ``c``, the
    M-step of ``SmallEM.m_step`` (weights, means, covariances, ``reg`` on the diagonal)
    into ``w_out``, ``mu_out``, ``cov_out``, then the E-step of :func:`small_estep` at them
    into ``N_out``, ``S1_out``, ``S2_out``.

    Returns
    -------
    (loglik, status) : status 0; 3 when a component is empty or a covariance is not
    above the floor (``floor``, as :func:`below_floor`; nothing of the E-step is done:
    the caller takes the general M-step, which handles both); 1 or 2 as
    :func:`small_estep`.
    """
    cdef Py_ssize_t d = XT.shape[0], n = XT.shape[1], K = N.shape[0]
    cdef Py_ssize_t k, a, b, i
    cdef double ntot = 0.0, tiny, q, v, ll = 0.0
    cdef int status = 0
    cdef double* sh = <double*> malloc(d * sizeof(double))
    cdef double* W = <double*> malloc(K * d * d * sizeof(double))
    cdef double* L = <double*> malloc(K * d * d * sizeof(double))
    cdef double* logc = <double*> malloc(K * sizeof(double))
    cdef double* idg = <double*> malloc(K * d * sizeof(double))
    cdef double* aN = <double*> malloc(K * sizeof(double))
    cdef double* a1 = <double*> malloc(K * d * sizeof(double))
    cdef double* a2 = <double*> malloc(K * d * d * sizeof(double))
    cdef double* mloc = <double*> malloc(K * d * sizeof(double))
    cdef double* work = <double*> malloc((K + 2 * d + 3) * EMS_BLK * sizeof(double))
    if (sh == NULL or W == NULL or L == NULL or logc == NULL or idg == NULL or aN == NULL
            or a1 == NULL or a2 == NULL or mloc == NULL or work == NULL):
        free(sh); free(W); free(L); free(logc); free(idg); free(aN); free(a1); free(a2)
        free(mloc); free(work)
        raise MemoryError()
    try:
        with nogil:
            # -- the M-step (small_moments' arithmetic, in its order) --------------------
            for k in range(K):
                ntot += N[k]
            tiny = 1e-10 * (ntot if ntot > 1.0 else 1.0)
            for k in range(K):
                if N[k] <= tiny:
                    status = 3
            if status == 0:
                for k in range(K):
                    for a in range(d):
                        sh[a] = S1[k, a] / N[k]
                        mu_out[k, a] = c[a] + sh[a]
                    for a in range(d):
                        for b in range(d):
                            W[(k * d + a) * d + b] = S2[k, a, b] - N[k] * (sh[a] * sh[b])
                    w_out[k] = N[k] / ntot
                    for a in range(d):
                        for b in range(d):
                            cov_out[k, a, b] = 0.0
                if kind <= 1:
                    for a in range(d):
                        for b in range(a if kind == 1 else 0, a + 1 if kind == 1 else d):
                            if shared:
                                q = 0.0
                                for k in range(K):
                                    q += W[(k * d + a) * d + b]
                                q = q / ntot
                                for k in range(K):
                                    cov_out[k, a, b] = q
                            else:
                                for k in range(K):
                                    cov_out[k, a, b] = W[(k * d + a) * d + b] / N[k]
                else:
                    q = 0.0
                    for k in range(K):
                        v = 0.0
                        for a in range(d):
                            v += W[(k * d + a) * d + a]
                        if shared:
                            q += v
                        else:
                            v = v / (N[k] * d)
                            for a in range(d):
                                cov_out[k, a, a] = v
                    if shared:
                        q = q / (ntot * d)
                        for k in range(K):
                            for a in range(d):
                                cov_out[k, a, a] = q
                if reg > 0.0:
                    for k in range(K):
                        for a in range(d):
                            cov_out[k, a, a] = cov_out[k, a, a] + reg
                # -- the floor (below_floor's test: non-finite, or cov - floor I not PD) -
                for k in range(K):
                    if _below_floor(&cov_out[k, 0, 0], d, floor, L):
                        status = 3
                        break
            # -- the E-step at the new parameters (small_estep's arithmetic) -------------
            if status == 0:
                status = _component_factors(K, d, &w_out[0], &cov_out[0, 0, 0], L, logc)
            if status == 0:
                status = _pass_stats(n, d, K, &XT[0, 0], &c[0], &mu_out[0, 0], L, logc, idg,
                                     mloc, aN, a1, a2, NULL, diag, work, &ll,
                                     &N_out[0], &S1_out[0, 0], &S2_out[0, 0, 0])
    finally:
        free(sh); free(W); free(L); free(logc); free(idg); free(aN); free(a1); free(a2)
        free(mloc); free(work)
    return ll, status
