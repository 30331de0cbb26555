"""Random-intercept GLMM kernels (binomial logit / probit, Poisson log): adaptive
Gauss-Hermite quadrature per group.

For group i (rows ``bounds[i]:bounds[i + 1]``, linear predictor without the random
intercept ``eta0``) the kernel finds the mode m_i of

    h_i(b) = sum_j log p(y_ij | eta0_ij + b) - b^2 / (2 tau^2)

(the row log-density, its score and curvature in eta come from ``_row`` for the
family code) by Newton's method with step halving (h_i is strictly concave for these
log-concave families), the curvature H_i = 1 / tau^2 + the rows' Fisher information
at m_i (-h_i''(m_i) for the canonical links; lme4's PIRLS weights for probit), and
the K adaptive nodes b_ik = m_i + z_k / sqrt(H_i).  From the integrand at the nodes
it writes the group's log-likelihood (row constants excluded), the normalised
posterior weights of the nodes and the posterior moments the E-step and Louis'
identity need.  ``agq2_groups`` does the same for a random intercept and slope with
a K x K tensor-product rule.

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


cdef inline void _node_moments(const double* w, const double* S, Py_ssize_t K,
                               Py_ssize_t q, double* mean, double* score,
                               double* miss) noexcept nogil:
    """Mean and covariance over the K quadrature nodes (weights ``w``, summing to 1) of
    the node scores ``S`` (K x q, row-major): the group's score (``score``, length q)
    and its missing information (``miss``, q x q, both triangles); ``mean`` is work
    space of length q."""
    cdef Py_ssize_t a, c, k
    cdef double d
    for a in range(q):
        mean[a] = 0.0
        for k in range(K):
            mean[a] = mean[a] + w[k] * S[k * q + a]
        score[a] = mean[a]
    for a in range(q):
        for c in range(a + 1):
            d = 0.0
            for k in range(K):
                d = d + w[k] * (S[k * q + a] - mean[a]) * (S[k * q + c] - mean[c])
            miss[a * q + c] = d
            miss[c * q + a] = d


cdef _check_trials(const double[::1] nt, const long long[::1] bounds, bint shared):
    """``nt`` holds what the kernels read: one value per row, or (``shared``) the trials of
    a row of any group, the same for every group (at least the largest group's rows)."""
    cdef Py_ssize_t i, need = 0
    if bounds.shape[0] < 1:
        raise ValueError("bounds needs at least one offset")
    if shared:
        for i in range(bounds.shape[0] - 1):
            if bounds[i + 1] - bounds[i] > need:
                need = bounds[i + 1] - bounds[i]
    else:
        need = bounds[bounds.shape[0] - 1]
    if nt.shape[0] < need:
        raise ValueError(f"trials has {nt.shape[0]} values; the groups need {need}")


def agq_groups(const double[:, ::1] X, const double[::1] y, const double[::1] nt,
               const double[::1] eta0, const long long[::1] bounds, double tau,
               const double[::1] z, const double[::1] logw, bint louis, int family,
               double[::1] mode, double[::1] curv, double[::1] llg,
               double[:, ::1] w, double[::1] mu, double[::1] mv,
               double[::1] eb2, double[:, ::1] score_g, double[:, :, ::1] miss_g,
               int n_threads, bint nt_shared=False):
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
    nt_shared : bool
        ``nt`` is the same for every group and holds the trials of the largest group's
        rows (e.g. ones, for 0/1 outcomes and the Poisson): no n-vector of constants.
    """
    cdef Py_ssize_t G = bounds.shape[0] - 1, K = z.shape[0], p = X.shape[1]
    cdef Py_ssize_t q = p + 1
    cdef Py_ssize_t i, j, k, a, r0, r1, m
    cdef double prec = 1.0 / (tau * tau), logtau = log(tau)
    cdef double md, cv, sc, bk, mx, tot, lc, e, wk, sp, sv, s2
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
    _check_trials(nt, bounds, nt_shared)
    for i in prange(G, nogil=True, schedule="dynamic", num_threads=n_threads):
        r0 = bounds[i]
        r1 = bounds[i + 1]
        m = r1 - r0
        yy = &y[r0]
        nn = &nt[0] if nt_shared else &nt[r0]
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
            _node_moments(&w[i, 0], S, K, q, mean, &score_g[i, 0], &miss_g[i, 0, 0])
            free(S)
            free(mean)


cdef struct Mode2:
    double m0, m1            # the mode
    double r11, r21, r22     # lower Cholesky factor of the node-scaling curvature there


cdef inline double _cond2(int fam, const double* y, const double* nt, const double* eta0,
                          const double* zz, Py_ssize_t m, double b0, double b1) noexcept nogil:
    cdef Py_ssize_t j
    cdef double s = 0.0
    for j in range(m):
        s = s + _row(fam, y[j], nt[j], eta0[j] + b0 + b1 * zz[j]).ll
    return s


cdef inline Mode2 _mode2(int fam, const double* y, const double* nt, const double* eta0,
                         const double* zz, Py_ssize_t m, double p00, double p01,
                         double p11) noexcept nogil:
    """Mode of h(b) = cond(b) - b'Pb / 2 over b = (b0, b1) (Newton with step halving from
    0; h strictly concave), and the Cholesky factor of P + sum_j fi_j (1, z_j)(1, z_j)'."""
    cdef Mode2 r
    cdef RowVals rv
    cdef Py_ssize_t j
    cdef int it, half
    cdef double b0 = 0.0, b1 = 0.0, hb, hc, g0, g1, h00, h01, h11, det, s0, s1, t, c0, c1
    cdef double big
    hb = _cond2(fam, y, nt, eta0, zz, m, b0, b1)
    for it in range(200):
        g0 = -(p00 * b0 + p01 * b1)
        g1 = -(p01 * b0 + p11 * b1)
        h00 = p00
        h01 = p01
        h11 = p11
        for j in range(m):
            rv = _row(fam, y[j], nt[j], eta0[j] + b0 + b1 * zz[j])
            g0 = g0 + rv.u
            g1 = g1 + rv.u * zz[j]
            h00 = h00 + rv.v
            h01 = h01 + rv.v * zz[j]
            h11 = h11 + rv.v * zz[j] * zz[j]
        det = h00 * h11 - h01 * h01
        s0 = (h11 * g0 - h01 * g1) / det
        s1 = (h00 * g1 - h01 * g0) / det
        big = fabs(s0) if fabs(s0) > fabs(s1) else fabs(s1)
        if big > 10.0:
            s0 = s0 * 10.0 / big
            s1 = s1 * 10.0 / big
        t = 1.0
        c0 = b0 + s0
        c1 = b1 + s1
        hc = (_cond2(fam, y, nt, eta0, zz, m, c0, c1)
              - 0.5 * (p00 * c0 * c0 + 2.0 * p01 * c0 * c1 + p11 * c1 * c1))
        for half in range(60):
            if hc >= hb - 1e-12 * fabs(hb):
                break
            t = 0.5 * t
            c0 = b0 + t * s0
            c1 = b1 + t * s1
            hc = (_cond2(fam, y, nt, eta0, zz, m, c0, c1)
                  - 0.5 * (p00 * c0 * c0 + 2.0 * p01 * c0 * c1 + p11 * c1 * c1))
        b0 = c0
        b1 = c1
        hb = hc
        if t * big < 1e-12 * (1.0 + fabs(b0) + fabs(b1)):
            break
    h00 = p00
    h01 = p01
    h11 = p11
    for j in range(m):
        rv = _row(fam, y[j], nt[j], eta0[j] + b0 + b1 * zz[j])
        h00 = h00 + rv.fi
        h01 = h01 + rv.fi * zz[j]
        h11 = h11 + rv.fi * zz[j] * zz[j]
    r.m0 = b0
    r.m1 = b1
    r.r11 = sqrt(h00)
    r.r21 = h01 / r.r11
    r.r22 = sqrt(h11 - r.r21 * r.r21)
    return r


def agq2_groups(const double[:, ::1] X, const double[::1] y, const double[::1] nt,
                const double[::1] zs, const double[::1] eta0, const long long[::1] bounds,
                double la, double lc, double ld, const double[::1] z,
                const double[::1] logw, bint louis, int family,
                double[:, ::1] mode, double[:, ::1] chol, double[::1] llg,
                double[:, ::1] w, double[::1] mu, double[::1] mv, double[:, ::1] ebb,
                double[:, ::1] score_g, double[:, :, ::1] miss_g, double[:, :, ::1] cvar_g,
                int n_threads, bint nt_shared=False):
    """Tensor-product adaptive Gauss-Hermite quadrature of a random intercept and slope.

    The random effects b_i = (b0_i, b1_i) ~ N(0, L L') with L = [[a, 0], [c, d]],
    a = exp(la), d = exp(ld); row j's linear predictor is eta0_j + b0 + b1 zs_j.  Per
    group: the mode m_i of the log joint density (2-D Newton with step halving), the
    lower Cholesky factor R_i of its node-scaling curvature (prior precision plus the
    rows' Fisher information), and the K^2 nodes m_i + R_i^-T (z_k, z_l).

    Parameters
    ----------
    X, y, nt, eta0, bounds, z, logw, family, n_threads, nt_shared :
        As in :func:`agq_groups` (``eta0`` includes the offset).
    zs : ndarray, shape (n,)
        The random slope's covariate.
    la, lc, ld : float
        log a, c and log d of the Cholesky factor L of the random effects' covariance.
    louis : bool
        Also the per-group score, missing information and complete information of
        (la, lc, ld).
    mode : ndarray, shape (G, 2)
        Out: conditional modes.
    chol : ndarray, shape (G, 3)
        Out: (r11, r21, r22) of the node-scaling curvature's Cholesky factor.
    llg : ndarray, shape (G,)
        Out: log-likelihood of the group (no constants).
    w : ndarray, shape (G, K * K)
        Out: normalised posterior weights of the nodes (node k * K + l at (z_k, z_l)).
    mu, mv : ndarray, shape (n,)
        Out: posterior means of each row's score and observed curvature in eta.
    ebb : ndarray, shape (G, 3)
        Out: posterior E[b0^2], E[b0 b1], E[b1^2].
    score_g : ndarray, shape (G, p + 3)
        Out (``louis``): posterior mean of the complete-data score in (beta, la, lc, ld).
    miss_g : ndarray, shape (G, p + 3, p + 3)
        Out (``louis``): its posterior covariance.
    cvar_g : ndarray, shape (G, 3, 3)
        Out (``louis``): posterior mean of minus the Hessian of log N(b; 0, L L') in
        (la, lc, ld).
    """
    cdef Py_ssize_t G = bounds.shape[0] - 1, K = z.shape[0], p = X.shape[1]
    cdef Py_ssize_t K2 = K * K
    cdef Py_ssize_t q = p + 3
    cdef Py_ssize_t i, j, k, kk, a_, r0, r1, m
    cdef double a = exp(la), c = lc, d = exp(ld)
    cdef double det = a * a * d * d
    cdef double p00 = (c * c + d * d) / det, p01 = -a * c / det, p11 = a * a / det
    cdef double lognorm = -1.8378770664093454836 - la - ld     # -log(2 pi) - log|L|
    cdef double b0, b1, s1, s2, t1, t2, mx, tot, lc_, wk, e00, e01, e11, sp, sv, u1, u2, dd
    cdef double logdet
    cdef Mode2 md
    cdef RowVals rv
    cdef double* S
    cdef double* mean
    cdef double* H
    cdef const double* yy
    cdef const double* nn
    cdef const double* ee
    cdef const double* zz
    cdef int fam = family
    if fam < 0 or fam > 2:
        raise ValueError("family must be 0 (logit), 1 (probit) or 2 (Poisson)")
    _check_trials(nt, bounds, nt_shared)
    if not (isfinite(la) and isfinite(lc) and isfinite(ld)):
        raise ValueError("the covariance parameters must be finite")
    for i in prange(G, nogil=True, schedule="dynamic", num_threads=n_threads):
        r0 = bounds[i]
        r1 = bounds[i + 1]
        m = r1 - r0
        yy = &y[r0]
        nn = &nt[0] if nt_shared else &nt[r0]
        ee = &eta0[r0]
        zz = &zs[r0]
        md = _mode2(fam, yy, nn, ee, zz, m, p00, p01, p11)
        mode[i, 0] = md.m0
        mode[i, 1] = md.m1
        chol[i, 0] = md.r11
        chol[i, 1] = md.r21
        chol[i, 2] = md.r22
        logdet = -log(md.r11) - log(md.r22)
        mx = -INFINITY
        for kk in range(K2):
            t1 = z[kk // K]
            t2 = z[kk % K]
            s2 = t2 / md.r22
            s1 = (t1 - md.r21 * s2) / md.r11
            b0 = md.m0 + s1
            b1 = md.m1 + s2
            lc_ = (_cond2(fam, yy, nn, ee, zz, m, b0, b1)
                   - 0.5 * (p00 * b0 * b0 + 2.0 * p01 * b0 * b1 + p11 * b1 * b1)
                   + lognorm + logdet + logw[kk // K] + logw[kk % K])
            w[i, kk] = lc_
            if lc_ > mx:
                mx = lc_
        tot = 0.0
        for kk in range(K2):
            tot = tot + exp(w[i, kk] - mx)
        llg[i] = mx + log(tot)
        e00 = 0.0
        e01 = 0.0
        e11 = 0.0
        for kk in range(K2):
            wk = exp(w[i, kk] - mx) / tot
            w[i, kk] = wk
            s2 = z[kk % K] / md.r22
            s1 = (z[kk // K] - md.r21 * s2) / md.r11
            b0 = md.m0 + s1
            b1 = md.m1 + s2
            e00 = e00 + wk * b0 * b0
            e01 = e01 + wk * b0 * b1
            e11 = e11 + wk * b1 * b1
        ebb[i, 0] = e00
        ebb[i, 1] = e01
        ebb[i, 2] = e11
        for j in range(m):
            sp = 0.0
            sv = 0.0
            for kk in range(K2):
                s2 = z[kk % K] / md.r22
                s1 = (z[kk // K] - md.r21 * s2) / md.r11
                rv = _row(fam, yy[j], nn[j], ee[j] + md.m0 + s1 + (md.m1 + s2) * zz[j])
                sp = sp + w[i, kk] * rv.u
                sv = sv + w[i, kk] * rv.v
            mu[r0 + j] = sp
            mv[r0 + j] = sv
        if louis:
            S = <double*> malloc(K2 * q * sizeof(double))
            mean = <double*> malloc(q * sizeof(double))
            H = <double*> malloc(9 * sizeof(double))
            for a_ in range(9):
                H[a_] = 0.0
            for kk in range(K2):
                s2 = z[kk % K] / md.r22
                s1 = (z[kk // K] - md.r21 * s2) / md.r11
                b0 = md.m0 + s1
                b1 = md.m1 + s2
                for a_ in range(p):
                    S[kk * q + a_] = 0.0
                for j in range(m):
                    dd = _row(fam, yy[j], nn[j], ee[j] + b0 + b1 * zz[j]).u
                    for a_ in range(p):
                        S[kk * q + a_] = S[kk * q + a_] + X[r0 + j, a_] * dd
                # log N(b; 0, L L') in (la, lc, ld): u1 = b0 / a, u2 = (b1 - c u1) / d
                u1 = b0 / a
                u2 = (b1 - c * u1) / d
                S[kk * q + p] = -1.0 + u1 * u1 - c * u1 * u2 / d
                S[kk * q + p + 1] = u1 * u2 / d
                S[kk * q + p + 2] = -1.0 + u2 * u2
                wk = w[i, kk]
                # minus the Hessian, (la, lc, ld) x (la, lc, ld)
                H[0] = H[0] + wk * (2.0 * u1 * u1 + c * c * u1 * u1 / (d * d)
                                    - c * u1 * u2 / d)
                H[1] = H[1] + wk * (u1 * u2 / d - c * u1 * u1 / (d * d))
                H[2] = H[2] + wk * (-2.0 * c * u1 * u2 / d)
                H[4] = H[4] + wk * (u1 * u1 / (d * d))
                H[5] = H[5] + wk * (2.0 * u1 * u2 / d)
                H[8] = H[8] + wk * (2.0 * u2 * u2)
            H[3] = H[1]
            H[6] = H[2]
            H[7] = H[5]
            for a_ in range(9):
                cvar_g[i, a_ // 3, a_ % 3] = H[a_]
            _node_moments(&w[i, 0], S, K2, q, mean, &score_g[i, 0], &miss_g[i, 0, 0])
            free(S)
            free(mean)
            free(H)
