"""Mixture-of-regressions kernel: responsibilities, E-step statistics and Louis'
pieces of a finite mixture of GLMs in one pass over the data.

A unit u is a run of rows ``ub[u]:ub[u + 1]`` that share one component (a row, or a
group).  For component k the linear predictor of row i is

    eta_ik = off_i + x2_i' alpha + x_i' beta_k,

the unit's log prior is the log-softmax of z_u' gamma_k (z of the unit's first row),
and the unit's joint log-density is log pi_k(z_u) + sum_i log f_k(y_i | eta_ik).
A log-sum-exp over k gives the unit's log-likelihood l_u and responsibilities
r_uk.  With c = w_u r_uk and the joint design row d_i = (x_i, x2_i), each chunk of
units accumulates, per component (``part_comp[c, k]``, laid out as
``N | G1 (pD) | G2 (pD x pD, upper triangle) | Gep (pD) | Gp | Gpp``):

* ``mode = 1`` (Gaussian natural statistics): N = sum c, G1 = sum c yo d,
  G2 = sum c d d', Gp = sum c yo^2 with yo = y - off;
* ``mode >= 2`` (the pieces of Q's gradient and negative Hessian): N = sum c,
  G1 = sum c d1 d, G2 = sum -c d2 d d', Gep = sum -c dep d, Gp = sum c dp,
  Gpp = sum -c dpp, with d1 = dl/deta, d2 = d2l/deta2 and the derivatives in the log
  dispersion phi (dp, dpp, dep) of the family's row log-density;

and, when asked (``want_prior``), the multinomial-logit pieces of the weights
(``part_prior[c] = pg | pH (upper triangle)``: pg = sum w (r_a - pi_a) z,
pH = sum w pi_a (delta_ab - pi_b) z z', a, b = 2..K).  ``mode = 3`` adds Louis'
missing information sum_u w_u (sum_k r_uk a_uk a_uk' - m_u m_u') (upper triangle,
``part_miss[c]``), where a_uk is the complete-data score of unit u in component k
and m_u = sum_k r_uk a_uk (for K = 2 as r_u1 r_u2 (a_u1 - a_u2)(a_u1 - a_u2)'); it
is accumulated unit by unit from a K x P buffer, never as an n x P array (the units'
scores m_u w_u go to ``out_s`` only when asked, for robust standard errors).  ``mode = 0`` only evaluates the log-likelihood (and the
per-unit posteriors into ``out_r`` and ``out_ll`` when these are not empty).

``assign = 1`` replaces the responsibilities by the MAP one-hot (classification
EM; the total is then the classification log-likelihood), ``assign = 2`` by the
component drawn with the uniform ``draws[u]`` (stochastic EM).

Families (``family``): 0 Gaussian (phi = log sigma), 1 Poisson (log link),
2 binomial (logit link, ``m`` trials), 3 NB2 (log link, phi = log theta).  ``c`` is
the parameter-free part of each row's log-density.

Units are split into ``n_chunks(n_units)`` chunks, a function of the number of
units only; each chunk writes its own partial sums, which the caller reduces in
chunk order, so results are bitwise identical for any number of threads.  The
working memory is one row of ``scratch`` per chunk.
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport exp, log, log1p, fabs, isfinite
from libc.stdint cimport int64_t
cimport scipy.special.cython_special as sc

cdef Py_ssize_t MIN_CHUNK = 1024
cdef Py_ssize_t MAX_CHUNKS = 256

cdef struct Der:
    double d1
    double d2
    double dp
    double dpp
    double dep


def n_chunks(Py_ssize_t n_units):
    """Number of unit chunks the kernel splits ``n_units`` units into."""
    cdef Py_ssize_t nch = (n_units + MIN_CHUNK - 1) // MIN_CHUNK
    if nch > MAX_CHUNKS:
        nch = MAX_CHUNKS
    if nch < 1:
        nch = 1
    return nch


def comp_width(Py_ssize_t pD):
    """Length of one component's block of ``part_comp`` for a joint design of pD columns."""
    return 1 + pD + pD * pD + pD + 2


def scratch_width(Py_ssize_t K, Py_ssize_t pD, Py_ssize_t n_par):
    """Length of one chunk's row of ``scratch``."""
    return 4 * K + pD + K * n_par + n_par


cdef inline double _dot(const double* x, const double* y, Py_ssize_t p) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t j
    for j in range(p):
        s = s + x[j] * y[j]
    return s


cdef inline void _axpy(double a, const double* x, double* y, Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(p):
        y[j] = y[j] + a * x[j]


cdef inline void _rank1_upper(double a, const double* x, double* M, Py_ssize_t p) noexcept nogil:
    """M[j, l] += a x_j x_l for l >= j (M is p x p, row-major)."""
    cdef Py_ssize_t j, l
    cdef double t
    for j in range(p):
        t = a * x[j]
        if t != 0.0:
            for l in range(j, p):
                M[j * p + l] = M[j * p + l] + t * x[l]


cdef inline double _logaddexp(double a, double b) noexcept nogil:
    if a > b:
        return a + log1p(exp(b - a))
    return b + log1p(exp(a - b))


cdef inline double _expit(double x) noexcept nogil:
    cdef double e
    if x >= 0.0:
        return 1.0 / (1.0 + exp(-x))
    e = exp(x)
    return e / (1.0 + e)


cdef inline double _trigamma(double x) noexcept nogil:
    """psi'(x) for x > 0: recurrence up to x >= 10, then the asymptotic series
    (Bernoulli numbers; truncation error below 1e-16 relative there)."""
    cdef double s = 0.0, iz, iz2
    while x < 10.0:
        s = s + 1.0 / (x * x)
        x = x + 1.0
    iz = 1.0 / x
    iz2 = iz * iz
    return s + iz + 0.5 * iz2 + iz * iz2 * (
        1.0 / 6.0 - iz2 * (1.0 / 30.0 - iz2 * (1.0 / 42.0 - iz2 * (
            1.0 / 30.0 - iz2 * (5.0 / 66.0 - iz2 * (691.0 / 2730.0 - iz2 * 7.0 / 6.0))))))


cdef inline void _comp_consts(int family, double phi, double* kc) noexcept nogil:
    """Per-component constants of the row log-density and its derivatives."""
    if family == 0:
        kc[0] = exp(-2.0 * phi)              # 1 / sigma^2
    elif family == 3:
        kc[0] = exp(phi)                     # theta
        kc[1] = sc.gammaln(kc[0])
        kc[2] = sc.psi(kc[0])
        kc[3] = _trigamma(kc[0])


cdef inline double _logpdf(int family, double y, double eta, double phi, const double* kc,
                           double m, double c) noexcept nogil:
    cdef double e, th, lmt
    if family == 0:
        e = y - eta
        return c - phi - 0.5 * e * e * kc[0]
    if family == 1:
        return y * eta - exp(eta) + c
    if family == 2:
        return y * eta - m * _logaddexp(0.0, eta) + c
    th = kc[0]
    lmt = _logaddexp(eta, phi)
    return sc.gammaln(y + th) - kc[1] + c + th * (phi - lmt) + y * (eta - lmt)


cdef inline Der _derivs(int family, double y, double eta, const double* kc,
                        double m) noexcept nogil:
    cdef Der r
    cdef double e, iv, e2, mu, pr, th, tm, lt, ltt
    r.dp = 0.0
    r.dpp = 0.0
    r.dep = 0.0
    if family == 0:
        e = y - eta
        iv = kc[0]
        e2 = e * e * iv
        r.d1 = e * iv
        r.d2 = -iv
        r.dp = e2 - 1.0
        r.dpp = -2.0 * e2
        r.dep = -2.0 * e * iv
    elif family == 1:
        mu = exp(eta)
        r.d1 = y - mu
        r.d2 = -mu
    elif family == 2:
        pr = _expit(eta)
        r.d1 = y - m * pr
        r.d2 = -m * pr * (1.0 - pr)
    else:
        th = kc[0]
        mu = exp(eta)
        tm = th + mu
        r.d1 = th * (y - mu) / tm
        r.d2 = -th * mu * (y + th) / (tm * tm)
        lt = sc.psi(y + th) - kc[2] + log(th / tm) + 1.0 - (th + y) / tm
        ltt = (_trigamma(y + th) - kc[3] + 1.0 / th - 2.0 / tm + (th + y) / (tm * tm))
        r.dp = th * lt
        r.dpp = th * th * ltt + th * lt
        r.dep = th * (y - mu) * mu / (tm * tm)
    return r


cdef inline void _log_prior(const double* z, const double* gamma, Py_ssize_t K,
                            Py_ssize_t q, double* lp) noexcept nogil:
    """lp[k] = log-softmax_k of z' gamma_k."""
    cdef Py_ssize_t k
    cdef double mx = 0.0, s = 0.0
    for k in range(K):
        lp[k] = _dot(z, gamma + k * q, q)
        if k == 0 or lp[k] > mx:
            mx = lp[k]
    for k in range(K):
        s = s + exp(lp[k] - mx)
    s = mx + log(s)
    for k in range(K):
        lp[k] = lp[k] - s


cdef inline double _lse_resp(const double* jt, Py_ssize_t K, double* r) noexcept nogil:
    """Log-sum-exp of jt[0..K) and the normalised exp(jt - lse) into r."""
    cdef Py_ssize_t k
    cdef double mx = jt[0], s = 0.0, ll
    for k in range(1, K):
        if jt[k] > mx:
            mx = jt[k]
    if not isfinite(mx):
        for k in range(K):
            r[k] = exp(jt[k] - mx)
        return mx
    for k in range(K):
        r[k] = exp(jt[k] - mx)
        s = s + r[k]
    ll = mx + log(s)
    for k in range(K):
        r[k] = r[k] / s
    return ll


cdef struct Job:
    # sizes and switches
    int family
    int mode
    int assign
    bint want_prior
    bint const_prior
    bint want_out
    bint want_scores
    Py_ssize_t K, p, f, q, pD, d, nc, npr, P, Lc, nu, nch, sw
    # inputs (C-contiguous, but off, m, w, c and Z may be broadcast constants: their steps
    # between rows, in doubles, are s_off, s_m, s_w, s_c (0 or 1) and s_z (0 or q))
    Py_ssize_t s_off, s_m, s_w, s_c, s_z
    const double* y
    const double* X
    const double* X2
    const double* Z
    const double* off
    const double* m
    const double* w
    const double* c
    const int64_t* ub
    const double* beta
    const double* phi
    const double* alpha
    const double* gamma
    const double* draws
    const double* kc
    const double* lp0
    const double* pi0
    # outputs
    double* part_comp
    double* part_prior
    double* part_miss
    double* part_s
    double* out_r
    double* out_ll
    double* out_s
    double* scratch


cdef void _chunk(const Job* jb, Py_ssize_t ch) noexcept nogil:
    """Units ``[ch nu / nch, (ch + 1) nu / nch)`` into the chunk's partial sums."""
    cdef int family = jb.family, mode = jb.mode, assign = jb.assign
    cdef bint want_prior = jb.want_prior, louis = jb.mode == 3, want_out = jb.want_out
    cdef bint want_scores = jb.want_scores
    cdef Py_ssize_t K = jb.K, p = jb.p, f = jb.f, q = jb.q, pD = jb.pD, d = jb.d
    cdef Py_ssize_t nc = jb.nc, npr = jb.npr, P = jb.P, Lc = jb.Lc, nu = jb.nu
    cdef Py_ssize_t u0 = (ch * nu) // jb.nch, u1 = ((ch + 1) * nu) // jb.nch
    cdef Py_ssize_t u, r0, r1, i, k, a, b, s, t, j, lab
    cdef double tot = 0.0, bad = 0.0, wu, ll, eta, base, cw, yo, cum, pa, v
    cdef const double* y = jb.y
    cdef const double* off = jb.off
    cdef const double* mm = jb.m
    cdef const double* cc = jb.c
    cdef Py_ssize_t so = jb.s_off, sm = jb.s_m, sc = jb.s_c
    cdef const double* bp = jb.beta
    cdef const double* ap = jb.alpha
    cdef const double* phi = jb.phi
    cdef const double* kc = jb.kc
    cdef const double* xi
    cdef const double* x2i
    cdef const double* zi
    cdef double* sp = jb.scratch + ch * jb.sw
    cdef double* lp = sp
    cdef double* jt = sp + K
    cdef double* rr = sp + 2 * K
    cdef double* pis = sp + 3 * K
    cdef double* drow = sp + 4 * K
    cdef double* av = drow + pD
    cdef double* mv = av + K * P
    cdef double* comp = jb.part_comp + ch * K * Lc
    cdef double* pg = jb.part_prior + ch * (npr + npr * npr) if want_prior else NULL
    cdef double* pH = pg + npr if want_prior else NULL
    cdef double* miss = jb.part_miss + ch * P * P if louis else NULL
    cdef double* ak
    cdef double* cp
    cdef Der der
    for u in range(u0, u1):
        r0 = jb.ub[u]
        r1 = jb.ub[u + 1]
        wu = jb.w[r0 * jb.s_w]
        lab = 0
        # log prior: log-softmax of z' gamma_k (the same for every unit when the
        # weights are constant), and the prior itself
        zi = jb.Z + r0 * jb.s_z
        if jb.const_prior:
            for k in range(K):
                lp[k] = jb.lp0[k]
                pis[k] = jb.pi0[k]
        else:
            _log_prior(zi, jb.gamma, K, q, lp)
            for k in range(K):
                pis[k] = exp(lp[k])
        for k in range(K):
            jt[k] = lp[k]
        # pass 1: the unit's joint log-densities
        for i in range(r0, r1):
            xi = jb.X + i * p
            base = off[i * so]
            if f > 0:
                base = base + _dot(jb.X2 + i * f, ap, f)
            for k in range(K):
                eta = base + _dot(xi, bp + k * p, p)
                jt[k] = jt[k] + _logpdf(family, y[i], eta, phi[k], kc + 4 * k, mm[i * sm], cc[i * sc])
        ll = _lse_resp(jt, K, rr)
        if want_out:
            jb.out_ll[u] = ll
            for k in range(K):
                jb.out_r[u * K + k] = rr[k]
        if not (isfinite(ll) and isfinite(rr[0])):
            bad = bad + 1.0
            continue
        if assign == 1:
            for k in range(1, K):
                if rr[k] > rr[lab]:
                    lab = k
            tot = tot + wu * jt[lab]
        else:
            tot = tot + wu * ll
        if assign == 2:
            cum = 0.0
            for k in range(K - 1):
                cum = cum + rr[k]
                if cum < jb.draws[u]:
                    lab = k + 1
        if assign > 0:
            for k in range(K):
                rr[k] = 1.0 if k == lab else 0.0
        if mode == 0:
            continue
        # the weights' multinomial logit (unit level)
        if want_prior:
            for a in range(1, K):
                pa = pis[a]
                _axpy(wu * (rr[a] - pa), zi, pg + (a - 1) * q, q)
                for b in range(a, K):
                    v = wu * pa * ((1.0 if a == b else 0.0) - pis[b])
                    for s in range(q):
                        j = s if a == b else 0
                        _axpy(v * zi[s], zi + j,
                              pH + ((a - 1) * q + s) * npr + (b - 1) * q + j, q - j)
        if louis:
            for j in range(K * P):
                av[j] = 0.0
        # pass 2: the rows' statistics under each component
        for i in range(r0, r1):
            xi = jb.X + i * p
            x2i = jb.X2 + i * f
            for j in range(p):
                drow[j] = xi[j]
            for j in range(f):
                drow[p + j] = x2i[j]
            base = off[i * so]
            if f > 0:
                base = base + _dot(x2i, ap, f)
            for k in range(K):
                if rr[k] == 0.0:
                    continue
                cw = wu * rr[k]
                cp = comp + k * Lc
                cp[0] = cp[0] + cw
                if mode == 1:
                    yo = y[i] - off[i * so]
                    _axpy(cw * yo, drow, cp + 1, pD)
                    _rank1_upper(cw, drow, cp + 1 + pD, pD)
                    cp[1 + 2 * pD + pD * pD] = cp[1 + 2 * pD + pD * pD] + cw * yo * yo
                    continue
                eta = base + _dot(xi, bp + k * p, p)
                der = _derivs(family, y[i], eta, kc + 4 * k, mm[i * sm])
                _axpy(cw * der.d1, drow, cp + 1, pD)
                _rank1_upper(-cw * der.d2, drow, cp + 1 + pD, pD)
                if d:
                    _axpy(-cw * der.dep, drow, cp + 1 + pD + pD * pD, pD)
                    cp[1 + 2 * pD + pD * pD] = cp[1 + 2 * pD + pD * pD] + cw * der.dp
                    cp[2 + 2 * pD + pD * pD] = cp[2 + 2 * pD + pD * pD] - cw * der.dpp
                if louis:
                    ak = av + k * P
                    _axpy(der.d1, xi, ak + k * (p + d), p)
                    if d:
                        ak[k * (p + d) + p] = ak[k * (p + d) + p] + der.dp
                    if f > 0:
                        _axpy(der.d1, x2i, ak + K * (p + d), f)
        if louis:
            # the weights' part of the complete-data scores, then
            # sum_k r_k a_k a_k' - m m' with m = sum_k r_k a_k; for two components
            # that is r_1 r_2 (a_1 - a_2)(a_1 - a_2)' (one update, no cancellation)
            for k in range(K):
                ak = av + k * P
                for a in range(1, K):
                    v = (1.0 if k == a else 0.0) - pis[a]
                    for t in range(q):
                        ak[nc + (a - 1) * q + t] = v * zi[t]
            if want_scores:
                # the unit's observed-data score w_u sum_k r_k a_k (Fisher's identity)
                for j in range(P):
                    v = 0.0
                    for k in range(K):
                        v = v + rr[k] * av[k * P + j]
                    jb.out_s[u * P + j] = wu * v
            if K == 2:
                for j in range(P):
                    mv[j] = av[j] - av[P + j]
                _rank1_upper(wu * rr[0] * rr[1], mv, miss, P)
            else:
                for j in range(P):
                    mv[j] = 0.0
                for k in range(K):
                    ak = av + k * P
                    if rr[k] != 0.0:
                        _rank1_upper(wu * rr[k], ak, miss, P)
                        _axpy(rr[k], ak, mv, P)
                _rank1_upper(-wu, mv, miss, P)
    jb.part_s[2 * ch] = tot
    jb.part_s[2 * ch + 1] = bad


def mixreg_pass(int family, int mode, int assign, bint want_prior, bint const_prior,
                const double[::1] y, const double[:, ::1] X, const double[:, ::1] X2,
                const double[:, :] Z, const double[:] off, const double[:] m,
                const double[:] w, const double[:] c, const int64_t[::1] ub,
                const double[:, ::1] beta, const double[::1] phi, const double[::1] alpha,
                const double[:, ::1] gamma, const double[::1] draws,
                double[:, :, ::1] part_comp, double[:, ::1] part_prior,
                double[:, ::1] part_miss, double[:, ::1] part_s,
                double[:, ::1] out_r, double[::1] out_ll, double[:, ::1] scratch,
                int n_threads, double[:, ::1] out_s=None):
    """One pass over the units (see the module docstring).

    Shapes: y, off, m, w, c (n,); X (n, p); X2 (n, f); Z (n, q); ub (n_units + 1,).
    All C-contiguous, except that ``off``, ``m``, ``w``, ``c`` and ``Z`` may be broadcast
    constants
    (``np.broadcast_to``: a zero step between rows; a row of Z contiguous);
    beta (K, p); phi (K,) (any values for families without a dispersion); alpha (f,);
    gamma (K, q); draws (n_units,) or empty.  Zero-initialised outputs, with
    nch = n_chunks(n_units), pD = p + f, P = K (p + d) + f + (K - 1) q (d = 1 for the
    Gaussian and NB2): part_comp (nch, K, comp_width(pD)) (any last size for mode 0),
    part_prior (nch, (K-1)q + ((K-1)q)^2), part_miss (nch, P * P), part_s (nch, 2)
    (weighted log-likelihood, number of units with an undefined one), out_r
    (n_units, K) and out_ll (n_units,) or empty, scratch (nch, scratch_width(K, pD, P)).
    With ``mode = 3``, ``out_s`` (n_units, P), if given, receives each unit's observed-data
    score w_u sum_k r_uk a_uk (the rows of the score; for robust standard errors).
    """
    cdef Job jb
    cdef Py_ssize_t ch, k
    cdef Py_ssize_t n = y.shape[0]
    jb.family, jb.mode, jb.assign = family, mode, assign
    jb.want_prior, jb.const_prior = want_prior, const_prior
    jb.want_out = out_ll.shape[0] > 0
    jb.want_scores = out_s is not None
    jb.K, jb.p, jb.f, jb.q = beta.shape[0], beta.shape[1], alpha.shape[0], gamma.shape[1]
    jb.nu = ub.shape[0] - 1
    jb.pD = jb.p + jb.f
    jb.d = 1 if (family == 0 or family == 3) else 0
    jb.nc = jb.K * (jb.p + jb.d) + jb.f
    jb.npr = (jb.K - 1) * jb.q
    jb.P = jb.nc + jb.npr
    jb.Lc = 1 + 2 * jb.pD + jb.pD * jb.pD + 2
    jb.nch = n_chunks(jb.nu)
    jb.sw = scratch.shape[1]
    if not 0 <= family <= 3 or not 0 <= mode <= 3 or not 0 <= assign <= 2:
        raise ValueError("family, mode or assign out of range")
    if mode == 1 and family != 0:
        raise ValueError("natural statistics (mode 1) are for the Gaussian family")
    for name, arr in (("X", X), ("X2", X2), ("Z", Z), ("off", off), ("m", m), ("w", w),
                      ("c", c)):
        if arr.shape[0] != n:
            raise ValueError(f"{name} needs {n} rows")
    for name, st in (("off", off.strides[0]), ("m", m.strides[0]), ("w", w.strides[0]),
                     ("c", c.strides[0])):
        if st != 0 and st != sizeof(double):
            raise ValueError(f"{name} must be contiguous or a broadcast constant")
    if Z.shape[1] > 1 and Z.strides[1] != sizeof(double):
        raise ValueError("the rows of Z must be contiguous")
    if Z.strides[0] != 0 and Z.strides[0] != Z.shape[1] * sizeof(double):
        raise ValueError("Z must be C-contiguous or a broadcast row")
    jb.s_off = off.strides[0] // sizeof(double)
    jb.s_m = m.strides[0] // sizeof(double)
    jb.s_w = w.strides[0] // sizeof(double)
    jb.s_c = c.strides[0] // sizeof(double)
    jb.s_z = Z.strides[0] // sizeof(double)
    if jb.nu < 1 or ub[0] != 0 or ub[jb.nu] != n:
        raise ValueError("ub must run from 0 to the number of rows")
    if (X.shape[1] != jb.p or X2.shape[1] != jb.f or Z.shape[1] != jb.q
            or gamma.shape[0] != jb.K or phi.shape[0] != jb.K):
        raise ValueError("parameter shapes do not match the designs")
    if part_s.shape[0] != jb.nch or part_s.shape[1] != 2 or scratch.shape[0] != jb.nch:
        raise ValueError("part_s and scratch need n_chunks(n_units) rows")
    if mode > 0 and (part_comp.shape[0] != jb.nch or part_comp.shape[1] != jb.K
                     or part_comp.shape[2] != jb.Lc):
        raise ValueError("part_comp has the wrong shape")
    if want_prior and (part_prior.shape[0] != jb.nch
                       or part_prior.shape[1] != jb.npr + jb.npr * jb.npr):
        raise ValueError("part_prior has the wrong shape")
    if mode == 3 and (part_miss.shape[0] != jb.nch or part_miss.shape[1] != jb.P * jb.P):
        raise ValueError("part_miss has the wrong shape")
    if jb.want_scores and (mode != 3 or out_s.shape[0] != jb.nu or out_s.shape[1] != jb.P):
        raise ValueError("out_s needs mode 3 and shape (n_units, P)")
    if jb.sw < 4 * jb.K + jb.pD + jb.K * jb.P + jb.P:
        raise ValueError("scratch is too narrow")
    if assign == 2 and draws.shape[0] != jb.nu:
        raise ValueError("draws needs one value per unit")
    if jb.want_out and (out_ll.shape[0] != jb.nu or out_r.shape[0] != jb.nu
                        or out_r.shape[1] != jb.K):
        raise ValueError("out_r and out_ll need one row per unit")
    # per-component constants and the constant prior, once
    cdef double[:, ::1] kc = np.zeros((jb.K, 4))
    cdef double[::1] lp0 = np.zeros(jb.K)
    cdef double[::1] pi0 = np.zeros(jb.K)
    for k in range(jb.K):
        _comp_consts(family, phi[k], &kc[k, 0])
    _log_prior(&Z[0, 0], &gamma[0, 0], jb.K, jb.q, &lp0[0])
    for k in range(jb.K):
        pi0[k] = exp(lp0[k])
    jb.y, jb.X, jb.X2, jb.Z = &y[0], &X[0, 0], &X2[0, 0], &Z[0, 0]
    jb.off, jb.m, jb.w, jb.c, jb.ub = &off[0], &m[0], &w[0], &c[0], &ub[0]
    jb.beta, jb.phi, jb.alpha, jb.gamma = &beta[0, 0], &phi[0], &alpha[0], &gamma[0, 0]
    jb.draws = &draws[0]
    jb.kc, jb.lp0, jb.pi0 = &kc[0, 0], &lp0[0], &pi0[0]
    jb.part_comp, jb.part_prior = &part_comp[0, 0, 0], &part_prior[0, 0]
    jb.part_miss, jb.part_s = &part_miss[0, 0], &part_s[0, 0]
    jb.out_r, jb.out_ll, jb.scratch = &out_r[0, 0], &out_ll[0], &scratch[0, 0]
    jb.out_s = &out_s[0, 0] if jb.want_scores else NULL
    for ch in prange(jb.nch, nogil=True, schedule="static", num_threads=n_threads):
        _chunk(&jb, ch)
