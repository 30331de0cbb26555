"""Random-intercept binomial-logit kernels: adaptive Gauss-Hermite quadrature per group.

For group i (rows ``bounds[i]:bounds[i + 1]``, linear predictor without the random
intercept ``eta0``) the kernel finds the mode m_i of

    h_i(b) = sum_j [y_ij (eta0_ij + b) - n_ij log(1 + exp(eta0_ij + b))] - b^2 / (2 tau^2)

by Newton's method with step halving (h_i is strictly concave), the curvature
H_i = -h_i''(m_i), and the K adaptive nodes b_ik = m_i + z_k / sqrt(H_i).  From the
integrand at the nodes it writes the group's log-likelihood (binomial coefficients
excluded), the normalised posterior weights of the nodes and the posterior
moments the E-step and Louis' identity need.

Every group is handled by one thread and writes only its own outputs (per group or
per row of the group); the caller reduces them in group order, so the results are
bitwise identical for any number of threads.  Nothing here knows about models.
"""

from cython.parallel cimport prange
from libc.math cimport exp, log, log1p, sqrt, fabs, isfinite, INFINITY
from libc.stdlib cimport malloc, free

cdef double LOG_SQRT_2PI = 0.91893853320467274178


cdef inline double _log1pexp(double x) noexcept nogil:
    if x > 0.0:
        return x + log1p(exp(-x))
    return log1p(exp(x))


cdef inline double _expit(double x) noexcept nogil:
    cdef double e
    if x >= 0.0:
        return 1.0 / (1.0 + exp(-x))
    e = exp(x)
    return e / (1.0 + e)


cdef inline double _cond(const double* y, const double* nt, const double* eta0,
                         Py_ssize_t m, double b) noexcept nogil:
    """sum_j y_j (eta0_j + b) - n_j log(1 + exp(eta0_j + b))."""
    cdef Py_ssize_t j
    cdef double s = 0.0, e
    for j in range(m):
        e = eta0[j] + b
        s = s + y[j] * e - nt[j] * _log1pexp(e)
    return s


cdef struct ModeCurv:
    double mode   # argmax of h
    double curv   # -h'' there


cdef inline ModeCurv _mode(const double* y, const double* nt, const double* eta0,
                           Py_ssize_t m, double prec) noexcept nogil:
    """Mode of h(b) = cond(b) - prec b^2 / 2 from b = 0, and -h'' there.

    Returned by value: every variable the parallel loop assigns is thread-private
    (a pointer to a loop variable would leave it shared).
    """
    cdef ModeCurv r
    cdef Py_ssize_t j
    cdef int it, half
    cdef double b = 0.0, hb, hc, g, c, p, step, t, cand, e
    hb = _cond(y, nt, eta0, m, b)
    for it in range(200):
        g = -prec * b
        c = prec
        for j in range(m):
            p = _expit(eta0[j] + b)
            g = g + y[j] - nt[j] * p
            c = c + nt[j] * p * (1.0 - p)
        step = g / c
        t = 1.0
        cand = b + step
        hc = _cond(y, nt, eta0, m, cand) - 0.5 * prec * cand * cand
        for half in range(60):
            if hc >= hb - 1e-12 * fabs(hb):
                break
            t = 0.5 * t
            cand = b + t * step
            hc = _cond(y, nt, eta0, m, cand) - 0.5 * prec * cand * cand
        b = cand
        hb = hc
        if fabs(t * step) < 1e-12 * (1.0 + fabs(b)):
            break
    c = prec
    for j in range(m):
        p = _expit(eta0[j] + b)
        c = c + nt[j] * p * (1.0 - p)
    r.mode = b
    r.curv = c
    return r


def agq_groups(const double[:, ::1] X, const double[::1] y, const double[::1] nt,
               const double[::1] eta0, const long long[::1] bounds, double tau,
               const double[::1] z, const double[::1] logw, bint louis,
               double[::1] mode, double[::1] curv, double[::1] llg,
               double[:, ::1] w, double[::1] mp, double[::1] mv,
               double[::1] eb2, double[:, ::1] score_g, double[:, :, ::1] miss_g,
               int n_threads):
    """Adaptive Gauss-Hermite quadrature of every group's random intercept.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Fixed-effects design, rows sorted by group.
    y, nt : ndarray, shape (n,)
        Successes and trials.
    eta0 : ndarray, shape (n,)
        ``X @ beta``.
    bounds : ndarray of int64, shape (G + 1,)
        Row offsets of the groups.
    tau : float
        Random-intercept standard deviation.
    z, logw : ndarray, shape (K,)
        Gauss-Hermite nodes for N(0, 1) and the log weights ``log(w_k) + z_k^2 / 2
        + log(sqrt(2))`` of the physicists' rule rescaled (so that sum_k exp(logw_k)
        f(z_k) approximates int f).
    louis : bool
        Also compute the per-group score and missing information (``score_g``,
        ``miss_g``).
    mode, curv, llg, eb2 : ndarray, shape (G,)
        Out: conditional mode, curvature -h''(mode), log-likelihood of the group
        (no binomial coefficients), posterior E[b^2].
    w : ndarray, shape (G, K)
        Out: normalised posterior weights of the nodes ``mode + z / sqrt(curv)``.
    mp, mv : ndarray, shape (n,)
        Out: posterior means of p_ij and of p_ij (1 - p_ij).
    score_g : ndarray, shape (G, p + 1)
        Out (``louis``): posterior mean of the complete-data score in
        (beta, log tau).
    miss_g : ndarray, shape (G, p + 1, p + 1)
        Out (``louis``): posterior covariance of the complete-data score.
    n_threads : int
        Threads (one group per thread at a time).
    """
    cdef Py_ssize_t G = bounds.shape[0] - 1, K = z.shape[0], p = X.shape[1]
    cdef Py_ssize_t q = p + 1
    cdef Py_ssize_t i, j, k, a, c, r0, r1, m
    cdef double prec = 1.0 / (tau * tau), logtau = log(tau)
    cdef double md, cv, sc, bk, mx, tot, lc, pr, e, wk, sp, sv, s2, d
    cdef ModeCurv mc
    cdef double* S
    cdef double* mean
    cdef const double* yy
    cdef const double* nn
    cdef const double* ee
    if not (tau > 0.0 and isfinite(tau)):
        raise ValueError("tau must be positive and finite")
    for i in prange(G, nogil=True, schedule="dynamic", num_threads=n_threads):
        r0 = bounds[i]
        r1 = bounds[i + 1]
        m = r1 - r0
        yy = &y[r0]
        nn = &nt[r0]
        ee = &eta0[r0]
        mc = _mode(yy, nn, ee, m, prec)
        md = mc.mode
        cv = mc.curv
        mode[i] = md
        curv[i] = cv
        sc = 1.0 / sqrt(cv)
        # log integrand at the nodes
        mx = -INFINITY
        for k in range(K):
            bk = md + sc * z[k]
            lc = (_cond(yy, nn, ee, m, bk) - 0.5 * prec * bk * bk - logtau - LOG_SQRT_2PI
                  + logw[k] + log(sc))
            w[i, k] = lc
            if lc > mx:
                mx = lc
        tot = 0.0
        for k in range(K):
            tot = tot + exp(w[i, k] - mx)
        llg[i] = mx + log(tot)
        s2 = 0.0
        for k in range(K):
            wk = exp(w[i, k] - mx) / tot
            w[i, k] = wk
            bk = md + sc * z[k]
            s2 = s2 + wk * bk * bk
        eb2[i] = s2
        # posterior moments of the rows' probabilities
        for j in range(m):
            sp = 0.0
            sv = 0.0
            for k in range(K):
                pr = _expit(ee[j] + md + sc * z[k])
                sp = sp + w[i, k] * pr
                sv = sv + w[i, k] * pr * (1.0 - pr)
            mp[r0 + j] = sp
            mv[r0 + j] = sv
        if louis:
            S = <double*> malloc(K * q * sizeof(double))
            mean = <double*> malloc(q * sizeof(double))
            for k in range(K):
                bk = md + sc * z[k]
                for a in range(p):
                    S[k * q + a] = 0.0
                for j in range(m):
                    e = yy[j] - nn[j] * _expit(ee[j] + bk)
                    for a in range(p):
                        S[k * q + a] = S[k * q + a] + X[r0 + j, a] * e
                S[k * q + p] = bk * bk * prec - 1.0
            for a in range(q):
                mean[a] = 0.0
                for k in range(K):
                    mean[a] = mean[a] + w[i, k] * S[k * q + a]
                score_g[i, a] = mean[a]
            for a in range(q):
                for c in range(a + 1):
                    d = 0.0
                    for k in range(K):
                        d = d + w[i, k] * (S[k * q + a] - mean[a]) * (S[k * q + c] - mean[c])
                    miss_g[i, a, c] = d
                    miss_g[i, c, a] = d
            free(S)
            free(mean)
