"""Gaussian-mixture E-step for small data sets, in one call from the parameters.

:mod:`gmm_kernels` is built for many rows (chunks, threads, BLAS products) and its
caller prepares whitening factors with several numpy calls; on a few hundred rows
that preparation, not the arithmetic, is the cost of an EM iteration.  This kernel
takes the weights, means and covariances themselves, factors each covariance
(Cholesky, d is small), and in one serial pass over the rows returns

    N_k = sum r_ik,   S1_k = sum r_ik (x_i - c),   S2_k = sum r_ik (x_i - c)(x_i - c)'

about a fixed centre c (the statistics of ``GaussianMixture.chunk_stats``) and the
log-likelihood, optionally the responsibilities and the rows' log-densities.
"""

from libc.math cimport log, exp, sqrt, INFINITY
from libc.stdlib cimport malloc, free

cdef double LOG_2PI = 1.8378770664093453


def small_estep(const double[:, ::1] X, const double[::1] c, const double[::1] w,
                const double[:, ::1] mu, const double[:, :, ::1] cov,
                double[::1] N, double[:, ::1] S1, double[:, :, ::1] S2,
                double[:, ::1] resp, bint want_resp, bint diag):
    """One E-step over the rows of ``X`` (n x d, C order).

    Parameters
    ----------
    X : (n, d) rows; c : (d,) the centre of the statistics; w : (K,) weights;
    mu : (K, d) means; cov : (K, d, d) covariances; N, S1, S2 : outputs (overwritten);
    resp : (n, K) output when ``want_resp``; diag : only the diagonals of S2 (the
    off-diagonal entries are set to 0).

    Returns
    -------
    (loglik, status) : status 1 when a covariance is not positive definite or a weight
    is negative (the outputs are then undefined), 2 when a row has zero density.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = w.shape[0]
    cdef Py_ssize_t i, k, a, b
    cdef double s, q, top, tot, ll = 0.0, r
    cdef double* L = <double*> malloc(K * d * d * sizeof(double))
    cdef double* logc = <double*> malloc(K * sizeof(double))
    cdef double* z = <double*> malloc(d * sizeof(double))
    cdef double* e = <double*> malloc(d * sizeof(double))
    cdef double* lp = <double*> malloc(K * sizeof(double))
    cdef int status = 0
    if L == NULL or logc == NULL or z == NULL or e == NULL or lp == NULL:
        free(L); free(logc); free(z); free(e); free(lp)
        raise MemoryError()
    try:
        with nogil:
            # Cholesky factors (lower) and log-normalising constants
            for k in range(K):
                if not (w[k] >= 0.0):
                    status = 1
                    break
                s = 0.0
                for a in range(d):
                    for b in range(a + 1):
                        q = cov[k, a, b]
                        for i in range(b):
                            q = q - L[(k * d + a) * d + i] * L[(k * d + b) * d + i]
                        if a == b:
                            if not (q > 0.0) or q != q:
                                status = 1
                                break
                            L[(k * d + a) * d + a] = sqrt(q)
                            s += log(sqrt(q))
                        else:
                            L[(k * d + a) * d + b] = q / L[(k * d + b) * d + b]
                    if status:
                        break
                if status:
                    break
                if w[k] > 0.0:
                    logc[k] = log(w[k]) - 0.5 * d * LOG_2PI - s
                else:
                    logc[k] = -INFINITY
            if status == 0:
                for k in range(K):
                    N[k] = 0.0
                    for a in range(d):
                        S1[k, a] = 0.0
                        for b in range(d):
                            S2[k, a, b] = 0.0
                for i in range(n):
                    top = -INFINITY
                    for k in range(K):
                        # forward substitution L z = x - mu_k
                        q = 0.0
                        for a in range(d):
                            s = X[i, a] - mu[k, a]
                            for b in range(a):
                                s = s - L[(k * d + a) * d + b] * z[b]
                            z[a] = s / L[(k * d + a) * d + a]
                            q += z[a] * z[a]
                        lp[k] = logc[k] - 0.5 * q
                        if lp[k] > top:
                            top = lp[k]
                    if not (top > -INFINITY):
                        status = 2
                        break
                    tot = 0.0
                    for k in range(K):
                        lp[k] = exp(lp[k] - top)
                        tot += lp[k]
                    ll += top + log(tot)
                    for a in range(d):
                        e[a] = X[i, a] - c[a]
                    for k in range(K):
                        r = lp[k] / tot
                        if want_resp:
                            resp[i, k] = r
                        if r == 0.0:
                            continue
                        N[k] += r
                        for a in range(d):
                            S1[k, a] += r * e[a]
                            if diag:
                                S2[k, a, a] += r * e[a] * e[a]
                            else:
                                for b in range(a + 1):
                                    S2[k, a, b] += r * e[a] * e[b]
                if status == 0 and not diag:
                    for k in range(K):
                        for a in range(d):
                            for b in range(a):
                                S2[k, b, a] = S2[k, a, b]
    finally:
        free(L); free(logc); free(z); free(e); free(lp)
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
            bad[k] = 0
            for a in range(d):
                for b in range(d):
                    q = cov[k, a, b]
                    if q != q or q - q != 0.0:
                        bad[k] = 1
            if bad[k] == 0:
                for a in range(d):
                    for b in range(a + 1):
                        q = cov[k, a, b] - (floor if a == b else 0.0)
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
    free(L)
    return nbad
