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
and m_u = sum_k r_uk a_uk; it is accumulated unit by unit from a K x P buffer,
never as an n x P array.  ``mode = 0`` only evaluates the log-likelihood (and the
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


def mixreg_pass(int family, int mode, int assign, bint want_prior, bint const_prior,
                const double[::1] y, const double[:, ::1] X, const double[:, ::1] X2,
                const double[:, ::1] Z, const double[::1] off, const double[::1] m,
                const double[::1] w, const double[::1] c, const int64_t[::1] ub,
                const double[:, ::1] beta, const double[::1] phi, const double[::1] alpha,
                const double[:, ::1] gamma, const double[::1] draws,
                double[:, :, ::1] part_comp, double[:, ::1] part_prior,
                double[:, ::1] part_miss, double[:, ::1] part_s,
                double[:, ::1] out_r, double[::1] out_ll, double[:, ::1] scratch,
                int n_threads):
    """One pass over the units (see the module docstring).

    Shapes: y, off, m, w, c (n,); X (n, p); X2 (n, f); Z (n, q); ub (n_units + 1,);
    beta (K, p); phi (K,) (any values for families without a dispersion); alpha (f,);
    gamma (K, q); draws (n_units,) or empty.  Zero-initialised outputs, with
    nch = n_chunks(n_units), pD = p + f, P = K (p + d) + f + (K - 1) q (d = 1 for the
    Gaussian and NB2): part_comp (nch, K, comp_width(pD)) (any last size for mode 0),
    part_prior (nch, (K-1)q + ((K-1)q)^2), part_miss (nch, P * P), part_s (nch, 2)
    (weighted log-likelihood, number of units with an undefined one), out_r
    (n_units, K) and out_ll (n_units,) or empty, scratch (nch, scratch_width(K, pD, P)).
    """
    cdef Py_ssize_t K = beta.shape[0], p = beta.shape[1], f = alpha.shape[0]
    cdef Py_ssize_t q = gamma.shape[1], nu = ub.shape[0] - 1
    cdef Py_ssize_t pD = p + f
    cdef Py_ssize_t d = 1 if (family == 0 or family == 3) else 0
    cdef Py_ssize_t nc = K * (p + d) + f, npr = (K - 1) * q
    cdef Py_ssize_t P = nc + npr
    cdef Py_ssize_t Lc = 1 + pD + pD * pD + pD + 2
    cdef Py_ssize_t nch = n_chunks(nu)
    cdef bint want_out = out_ll.shape[0] > 0
    cdef bint louis = mode == 3
    cdef Py_ssize_t ch, u, u0, u1, r0, r1, i, k, a, b, s, t, j, lab
    cdef double tot, bad, wu, ll, eta, base, cw, yo, cum, pa, v
    cdef double* sp
    cdef double* lp
    cdef double* jt
    cdef double* rr
    cdef double* pis
    cdef double* drow
    cdef double* av
    cdef double* mv
    cdef double* ak
    cdef double* cp
    cdef double* pg
    cdef double* pH
    cdef double* miss
    cdef const double* xi
    cdef const double* zi
    cdef const double* bp = &beta[0, 0]
    cdef const double* ap = &alpha[0] if f > 0 else NULL
    cdef const double* gp = &gamma[0, 0]
    cdef Der der
    cdef double[:, ::1] kc = np.zeros((K, 4))
    cdef double[::1] lp0 = np.zeros(K)
    for k in range(K):
        _comp_consts(family, phi[k], &kc[k, 0])
    _log_prior(&Z[0, 0], gp, K, q, &lp0[0])
    if part_s.shape[0] != nch or scratch.shape[0] != nch:
        raise ValueError("part_s and scratch need n_chunks(n_units) rows")
    if mode > 0 and (part_comp.shape[0] != nch or part_comp.shape[1] != K
                     or part_comp.shape[2] != Lc):
        raise ValueError("part_comp has the wrong shape")
    if want_prior and (part_prior.shape[0] != nch or part_prior.shape[1] != npr + npr * npr):
        raise ValueError("part_prior has the wrong shape")
    if louis and (part_miss.shape[0] != nch or part_miss.shape[1] != P * P):
        raise ValueError("part_miss has the wrong shape")
    if scratch.shape[1] < 4 * K + pD + K * P + P:
        raise ValueError("scratch is too narrow")
    if assign == 2 and draws.shape[0] != nu:
        raise ValueError("draws needs one value per unit")
    if want_out and (out_ll.shape[0] != nu or out_r.shape[0] != nu or out_r.shape[1] != K):
        raise ValueError("out_r and out_ll need one row per unit")
    for ch in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        u0 = (ch * nu) // nch
        u1 = ((ch + 1) * nu) // nch
        sp = &scratch[ch, 0]
        lp = sp
        jt = sp + K
        rr = sp + 2 * K
        pis = sp + 3 * K
        drow = sp + 4 * K
        av = drow + pD
        mv = av + K * P
        cp = NULL
        pg = NULL
        pH = NULL
        miss = NULL
        if want_prior:
            pg = &part_prior[ch, 0]
            pH = pg + npr
        if louis:
            miss = &part_miss[ch, 0]
        tot = 0.0
        bad = 0.0
        for u in range(u0, u1):
            r0 = ub[u]
            r1 = ub[u + 1]
            wu = w[r0]
            lab = 0
            # log prior: log-softmax of z' gamma_k (the same for every unit when the
            # weights are constant), and the prior itself
            zi = &Z[r0, 0]
            if const_prior:
                for k in range(K):
                    lp[k] = lp0[k]
            else:
                _log_prior(zi, gp, K, q, lp)
            for k in range(K):
                jt[k] = lp[k]
                pis[k] = exp(lp[k])
            # pass 1: the unit's joint log-densities
            for i in range(r0, r1):
                xi = &X[i, 0]
                base = off[i]
                if f > 0:
                    base = base + _dot(&X2[i, 0], ap, f)
                for k in range(K):
                    eta = base + _dot(xi, bp + k * p, p)
                    jt[k] = jt[k] + _logpdf(family, y[i], eta, phi[k], &kc[k, 0], m[i], c[i])
            ll = _lse_resp(jt, K, rr)
            if want_out:
                out_ll[u] = ll
                for k in range(K):
                    out_r[u, k] = rr[k]
            if not (isfinite(ll) and isfinite(rr[0])):
                bad = bad + 1.0
                continue
            if assign == 1:
                lab = 0
                for k in range(1, K):
                    if rr[k] > rr[lab]:
                        lab = k
                tot = tot + wu * jt[lab]
            else:
                tot = tot + wu * ll
            if assign == 2:
                cum = 0.0
                lab = 0
                for k in range(K - 1):
                    cum = cum + rr[k]
                    if cum < draws[u]:
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
                    v = wu * (rr[a] - pa)
                    _axpy(v, zi, pg + (a - 1) * q, q)
                    for b in range(a, K):
                        v = wu * pa * ((1.0 if a == b else 0.0) - pis[b])
                        for s in range(q):
                            if a == b:
                                j = s
                            else:
                                j = 0
                            for t in range(j, q):
                                pH[((a - 1) * q + s) * npr + (b - 1) * q + t] = (
                                    pH[((a - 1) * q + s) * npr + (b - 1) * q + t]
                                    + v * zi[s] * zi[t])
            if louis:
                for j in range(K * P):
                    av[j] = 0.0
            # pass 2: the rows' statistics under each component
            for i in range(r0, r1):
                xi = &X[i, 0]
                for j in range(p):
                    drow[j] = xi[j]
                for j in range(f):
                    drow[p + j] = X2[i, j]
                base = off[i]
                if f > 0:
                    base = base + _dot(&X2[i, 0], ap, f)
                for k in range(K):
                    if rr[k] == 0.0:
                        continue
                    cw = wu * rr[k]
                    cp = &part_comp[ch, k, 0]
                    cp[0] = cp[0] + cw
                    if mode == 1:
                        yo = y[i] - off[i]
                        _axpy(cw * yo, drow, cp + 1, pD)
                        _rank1_upper(cw, drow, cp + 1 + pD, pD)
                        cp[1 + 2 * pD + pD * pD] = cp[1 + 2 * pD + pD * pD] + cw * yo * yo
                        continue
                    eta = base + _dot(xi, bp + k * p, p)
                    der = _derivs(family, y[i], eta, &kc[k, 0], m[i])
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
                            _axpy(der.d1, drow + p, ak + K * (p + d), f)
            if louis:
                # the weights' part of the complete-data scores, then
                # sum_k r_k a_k a_k' - m m' with m = sum_k r_k a_k
                for j in range(P):
                    mv[j] = 0.0
                for k in range(K):
                    ak = av + k * P
                    for a in range(1, K):
                        v = (1.0 if k == a else 0.0) - pis[a]
                        for t in range(q):
                            ak[nc + (a - 1) * q + t] = v * zi[t]
                    if rr[k] != 0.0:
                        _rank1_upper(wu * rr[k], ak, miss, P)
                        _axpy(rr[k], ak, mv, P)
                _rank1_upper(-wu, mv, miss, P)
        part_s[ch, 0] = tot
        part_s[ch, 1] = bad
