"""Random-intercept GLMM kernels (binomial logit / probit, Poisson log): adaptive
Gauss-Hermite quadrature per group.

For group i (rows ``bounds[i]:bounds[i + 1]``, linear predictor without the random
intercept ``eta0``) the kernel finds the mode m_i of

    h_i(b) = sum_j log p(y_ij | eta0_ij + b) - b^2 / (2 tau^2)

(the row log-density, its score and curvature in eta come from ``_row`` for the
family code) by Newton's method with step halving (h_i is strictly concave for these
log-concave families), the curvature H_i = 1 / tau^2 + the rows' Fisher information
at m_i (-h_i''(m_i) for the canonical links; lme4's PIRLS weights for probit), and the K adaptive nodes b_ik = m_i + z_k / sqrt(H_i).  From the
integrand at the nodes it writes the group's log-likelihood (binomial coefficients
excluded), the normalised posterior weights of the nodes and the posterior
moments the E-step and Louis' identity need.

Every group is handled by one thread and writes only its own outputs (per group or
per row of the group); the caller reduces them in group order, so the results are
bitwise identical for any number of threads.  Nothing here knows about models.
"""

from cython.parallel cimport prange
from libc.math cimport exp, log, log1p, sqrt, fabs, erfc, isfinite, INFINITY
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


# family codes (the model maps its (family, link) to one of these)
cdef enum:
    FAM_LOGIT = 0      # binomial, logit link
    FAM_PROBIT = 1     # binomial, probit link
    FAM_POISSON = 2    # Poisson, log link

cdef double SQRT_HALF = 0.70710678118654752440
cdef double INV_SQRT_2PI = 0.39894228040143267794


cdef struct RowVals:
    double ll     # log-density of the row at eta, without constants
    double u      # d ll / d eta
    double v      # -d^2 ll / d eta^2 (observed; > 0 for these log-concave families)
    double fi     # Fisher information in eta (lme4's working weight; = v for canonical links)


cdef inline double _mills(double x) noexcept nogil:
    """phi(x) / Phi(x), accurate in both tails."""
    cdef double a
    if x > -35.0:
        return INV_SQRT_2PI * exp(-0.5 * x * x) / (0.5 * erfc(-x * SQRT_HALF))
    # asymptotic series of Phi(x) / phi(x) = (1/a)(1 - 1/a^2 + 3/a^4 - 15/a^6), a = -x
    a = -x
    return a / (1.0 - 1.0 / (a * a) + 3.0 / (a * a * a * a) - 15.0 / (a * a * a * a * a * a))


cdef inline double _log_ndtr(double x) noexcept nogil:
    """log Phi(x), accurate in both tails."""
    cdef double a
    if x > 0.0:
        return log1p(-0.5 * erfc(x * SQRT_HALF))
    if x > -35.0:
        return log(0.5 * erfc(-x * SQRT_HALF))
    a = -x
    return (-0.5 * a * a - log(a) - LOG_SQRT_2PI
            + log(1.0 - 1.0 / (a * a) + 3.0 / (a * a * a * a) - 15.0 / (a * a * a * a * a * a)))


cdef inline RowVals _row(int fam, double y, double n, double e) noexcept nogil:
    """Log-density, score, observed and Fisher curvature of one row at eta = e."""
    cdef RowVals r
    cdef double p, l1, l0, mu
    if fam == FAM_LOGIT:
        p = _expit(e)
        r.ll = y * e - n * _log1pexp(e)
        r.u = y - n * p
        r.v = n * p * (1.0 - p)
        r.fi = r.v
    elif fam == FAM_PROBIT:
        l1 = _mills(e)          # phi / Phi at e
        l0 = _mills(-e)         # phi / (1 - Phi) at e
        r.ll = 0.0
        if y > 0.0:
            r.ll = y * _log_ndtr(e)
        if n - y > 0.0:
            r.ll = r.ll + (n - y) * _log_ndtr(-e)
        r.u = y * l1 - (n - y) * l0
        r.v = y * l1 * (e + l1) + (n - y) * l0 * (l0 - e)
        r.fi = n * l1 * l0
    else:
        mu = exp(e)
        r.ll = y * e - mu
        r.u = y - mu
        r.v = mu
        r.fi = mu
    return r


cdef inline double _cond(int fam, const double* y, const double* nt, const double* eta0,
                         Py_ssize_t m, double b) noexcept nogil:
    """sum_j log p(y_j | eta0_j + b) without constants."""
    cdef Py_ssize_t j
    cdef double s = 0.0
    for j in range(m):
        s = s + _row(fam, y[j], nt[j], eta0[j] + b).ll
    return s


cdef struct ModeCurv:
    double mode   # argmax of h
    double curv   # curvature that scales the nodes: Fisher (lme4's) -h'' there


cdef inline ModeCurv _mode(int fam, const double* y, const double* nt, const double* eta0,
                           Py_ssize_t m, double prec) noexcept nogil:
    """Mode of h(b) = cond(b) - prec b^2 / 2 from b = 0 (Newton with step halving), and
    prec + the Fisher information of the rows there (= -h'' for canonical links; lme4's
    PIRLS weights, which scale its quadrature nodes, for the probit link).

    Returned by value: every variable the parallel loop assigns is thread-private
    (a pointer to a loop variable would leave it shared).
    """
    cdef ModeCurv r
    cdef RowVals rv
    cdef Py_ssize_t j
    cdef int it, half
    cdef double b = 0.0, hb, hc, g, c, step, t, cand
    hb = _cond(fam, y, nt, eta0, m, b)
    for it in range(200):
        g = -prec * b
        c = prec
        for j in range(m):
            rv = _row(fam, y[j], nt[j], eta0[j] + b)
            g = g + rv.u
            c = c + rv.v
        step = g / c
        if step > 10.0:
            step = 10.0
        elif step < -10.0:
            step = -10.0
        t = 1.0
        cand = b + step
        hc = _cond(fam, y, nt, eta0, m, cand) - 0.5 * prec * cand * cand
        for half in range(60):
            if hc >= hb - 1e-12 * fabs(hb):
                break
            t = 0.5 * t
            cand = b + t * step
            hc = _cond(fam, y, nt, eta0, m, cand) - 0.5 * prec * cand * cand
        b = cand
        hb = hc
        if fabs(t * step) < 1e-12 * (1.0 + fabs(b)):
            break
    c = prec
    for j in range(m):
        c = c + _row(fam, y[j], nt[j], eta0[j] + b).fi
    r.mode = b
    r.curv = c
    return r


def agq_groups(const double[:, ::1] X, const double[::1] y, const double[::1] nt,
               const double[::1] eta0, const long long[::1] bounds, double tau,
               const double[::1] z, const double[::1] logw, bint louis, int family,
               double[::1] mode, double[::1] curv, double[::1] llg,
               double[:, ::1] w, double[::1] mu, double[::1] mv,
               double[::1] eb2, double[:, ::1] score_g, double[:, :, ::1] miss_g,
               int n_threads):
    """Adaptive Gauss-Hermite quadrature of every group's random intercept.

    Parameters
    ----------
    X : ndarray, shape (n, p)
        Fixed-effects design, rows sorted by group.
    y, nt : ndarray, shape (n,)
        Response (successes or counts) and binomial trials (ignored for Poisson).
    eta0 : ndarray, shape (n,)
        ``X @ beta`` plus the offset.
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
    family : int
        0 binomial logit, 1 binomial probit, 2 Poisson log.
    mode, curv, llg, eb2 : ndarray, shape (G,)
        Out: conditional mode, node-scaling curvature (prior precision plus the rows'
        Fisher information at the mode), log-likelihood of the group (no constants:
        binomial coefficients, log y!), posterior E[b^2].
    w : ndarray, shape (G, K)
        Out: normalised posterior weights of the nodes ``mode + z / sqrt(curv)``.
    mu, mv : ndarray, shape (n,)
        Out: posterior means of each row's score d log p / d eta and of its observed
        curvature -d^2 log p / d eta^2.
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
    cdef double md, cv, sc, bk, mx, tot, lc, e, wk, sp, sv, s2, d
    cdef int fam = family
    cdef ModeCurv mc
    cdef RowVals rv
    cdef double* S
    cdef double* mean
    cdef const double* yy
    cdef const double* nn
    cdef const double* ee
    if not (tau > 0.0 and isfinite(tau)):
        raise ValueError("tau must be positive and finite")
    if fam < 0 or fam > 2:
        raise ValueError("family must be 0 (logit), 1 (probit) or 2 (Poisson)")
    for i in prange(G, nogil=True, schedule="dynamic", num_threads=n_threads):
        r0 = bounds[i]
        r1 = bounds[i + 1]
        m = r1 - r0
        yy = &y[r0]
        nn = &nt[r0]
        ee = &eta0[r0]
        mc = _mode(fam, yy, nn, ee, m, prec)
        md = mc.mode
        cv = mc.curv
        mode[i] = md
        curv[i] = cv
        sc = 1.0 / sqrt(cv)
        # log integrand at the nodes
        mx = -INFINITY
        for k in range(K):
            bk = md + sc * z[k]
            lc = (_cond(fam, yy, nn, ee, m, bk) - 0.5 * prec * bk * bk - logtau
                  - LOG_SQRT_2PI + logw[k] + log(sc))
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
        # posterior moments of the rows' scores and curvatures
        for j in range(m):
            sp = 0.0
            sv = 0.0
            for k in range(K):
                rv = _row(fam, yy[j], nn[j], ee[j] + md + sc * z[k])
                sp = sp + w[i, k] * rv.u
                sv = sv + w[i, k] * rv.v
            mu[r0 + j] = sp
            mv[r0 + j] = sv
        if louis:
            S = <double*> malloc(K * q * sizeof(double))
            mean = <double*> malloc(q * sizeof(double))
            for k in range(K):
                bk = md + sc * z[k]
                for a in range(p):
                    S[k * q + a] = 0.0
                for j in range(m):
                    e = _row(fam, yy[j], nn[j], ee[j] + bk).u
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
