"""Censored-normal kernels: moments of a truncated standard normal and the
censored (Tobit / interval) regression E-step.

All loops are nogil over fixed-size row chunks; partial sums are written per
chunk and reduced by the caller in chunk order, so results do not depend on the
number of threads.  Nothing here knows about models: the inputs are arrays.

Truncated-normal moments.  For Z ~ N(0, 1) restricted to (a, b) the moments are
computed about a well-conditioned origin:

* 0 <= a: about the lower limit, from the recursion for the raw moments of
  U = Z - a, which needs only the inverse Mills ratio phi(a)/Q(a) evaluated as
  sqrt(2/pi)/erfcx(a/sqrt(2)) and is accurate far in the upper tail;
* b <= 0: by reflection Z -> -Z;
* a < 0 < b: about zero, where the probability of the interval is bounded
  away from zero unless the interval is narrow;
* a narrow finite interval, (b - a)(1 + |a|) < 1: by Gauss-Legendre quadrature,
  which sums central moments directly.
"""

from cython.parallel cimport prange
from libc.math cimport exp, log, log1p, expm1, erfc, fabs, isfinite, INFINITY
cimport scipy.special.cython_special as sc

cdef double SQRT1_2 = 0.70710678118654752440
cdef double LOG_SQRT_2PI = 0.91893853320467274178
cdef double SQRT_2_OVER_PI = 0.79788456080286535588
cdef Py_ssize_t CHUNK = 2048


cdef struct Moments:
    double logp   # log P(a < Z < b)
    double m      # E[Z | a < Z < b]
    double c2     # central moments of Z given a < Z < b
    double c3
    double c4


cdef inline Moments _central_from_raw(double logp, double origin, double M1, double M2,
                                      double M3, double M4) noexcept nogil:
    cdef Moments r
    cdef double M1sq = M1 * M1
    r.logp = logp
    r.m = origin + M1
    r.c2 = M2 - M1sq
    r.c3 = M3 - 3.0 * M1 * M2 + 2.0 * M1sq * M1
    r.c4 = M4 - 4.0 * M1 * M3 + 6.0 * M1sq * M2 - 3.0 * M1sq * M1sq
    if r.c2 < 0.0:
        r.c2 = 0.0
    if r.c4 < 0.0:
        r.c4 = 0.0
    return r


cdef inline Moments _upper(double a, double b) noexcept nogil:
    """Moments for 0 <= a < b <= inf, about the lower limit a."""
    cdef double ea = sc.erfcx(a * SQRT1_2)
    cdef double lam = SQRT_2_OVER_PI / ea          # phi(a) / Q(a)
    cdef double logqa = log(0.5 * ea) - 0.5 * a * a
    cdef double d = 0.0, h0, hb = 0.0, logrho, logR, one_m_R, logp
    cdef double M1, M2, M3, M4
    cdef int k
    if b == INFINITY:
        if a >= 8.0:
            # Far tail: the forward recursion below loses a factor a^2 per moment.
            # Run it backwards instead (the ratios I_k / I_(k-1) = k / (a + I_(k+1) / I_k)
            # of U's moments form a continued fraction, truncated after 32 terms:
            # relative error < 1e-20 for a >= 8).
            M4 = 0.0
            for k in range(32, 4, -1):
                M4 = k / (a + M4)
            M4 = 4.0 / (a + M4)
            M3 = 3.0 / (a + M4)
            M2 = 2.0 / (a + M3)
            M1 = 1.0 / (a + M2)
            M2 = M2 * M1
            M3 = M3 * M2
            M4 = M4 * M3
            return _central_from_raw(logqa, a, M1, M2, M3, M4)
        h0 = lam
        logp = logqa
    else:
        d = b - a
        logrho = -0.5 * d * (a + b)                # log phi(b)/phi(a)
        logR = log(sc.erfcx(b * SQRT1_2) / ea) + logrho   # log Q(b)/Q(a)
        one_m_R = -expm1(logR)
        h0 = lam / one_m_R
        hb = h0 * exp(logrho)
        logp = logqa + log(one_m_R)
    M1 = h0 - hb - a
    M2 = 1.0 - a * M1 - d * hb
    M3 = 2.0 * M1 - a * M2 - d * d * hb
    M4 = 3.0 * M2 - a * M3 - d * d * d * hb
    return _central_from_raw(logp, a, M1, M2, M3, M4)


cdef inline Moments _straddle(double a, double b) noexcept nogil:
    """Moments for a < 0 < b (either may be infinite), about zero."""
    cdef double qa = 0.0, qb = 0.0, pa = 0.0, pb = 0.0, ta1 = 0.0, tb1 = 0.0
    cdef double ta2 = 0.0, tb2 = 0.0, ta3 = 0.0, tb3 = 0.0, P, E1, E2, E3, E4
    if a != -INFINITY:   # (NaN propagates)
        qa = 0.5 * erfc(-a * SQRT1_2)             # Phi(a)
    if b != INFINITY:
        qb = 0.5 * erfc(b * SQRT1_2)              # 1 - Phi(b)
    P = 1.0 - qa - qb
    if a != -INFINITY:   # (NaN propagates)
        pa = exp(-0.5 * a * a - LOG_SQRT_2PI) / P
        ta1 = a * pa
        ta2 = a * ta1
        ta3 = a * ta2
    if b != INFINITY:
        pb = exp(-0.5 * b * b - LOG_SQRT_2PI) / P
        tb1 = b * pb
        tb2 = b * tb1
        tb3 = b * tb2
    E1 = pa - pb
    E2 = 1.0 + ta1 - tb1
    E3 = 2.0 * E1 + ta2 - tb2
    E4 = 3.0 * E2 + ta3 - tb3
    return _central_from_raw(log1p(-(qa + qb)), 0.0, E1, E2, E3, E4)


cdef double[8] GL_X = [-0.9602898564975362, -0.7966664774136267, -0.525532409916329,
                       -0.18343464249564978, 0.18343464249564978, 0.525532409916329,
                       0.7966664774136267, 0.9602898564975362]
cdef double[8] GL_W = [0.10122853629037706, 0.22238103445337443, 0.3137066458778869,
                       0.36268378337836166, 0.36268378337836166, 0.3137066458778869,
                       0.22238103445337443, 0.10122853629037706]


cdef inline Moments _narrow(double a, double b) noexcept nogil:
    """Moments for a finite interval with (b - a)(1 + |a|) < 1, by 8-point
    Gauss-Legendre quadrature of the density about a.  On such an interval the
    integrand exp(-a u - u^2/2) is smooth (relative quadrature error below
    1e-15) and the central moments are summed directly, without the
    cancellation the closed forms suffer as the interval narrows."""
    cdef Moments r
    cdef double d = b - a, half = 0.5 * (b - a), u, g, s0 = 0.0, s1 = 0.0
    cdef double gs[8]
    cdef double us[8]
    cdef int k
    for k in range(8):
        u = half * (GL_X[k] + 1.0)
        g = GL_W[k] * exp(-a * u - 0.5 * u * u)
        us[k] = u
        gs[k] = g
        s0 = s0 + g
        s1 = s1 + g * u
    r.logp = log(s0 * half) - 0.5 * a * a - LOG_SQRT_2PI
    s1 = s1 / s0
    r.m = a + s1
    r.c2 = 0.0
    r.c3 = 0.0
    r.c4 = 0.0
    for k in range(8):
        u = us[k] - s1
        g = gs[k] * u * u
        r.c2 = r.c2 + g
        g = g * u
        r.c3 = r.c3 + g
        r.c4 = r.c4 + g * u
    r.c2 = r.c2 / s0
    r.c3 = r.c3 / s0
    r.c4 = r.c4 / s0
    return r


cdef inline Moments _moments(double a, double b) noexcept nogil:
    cdef Moments r
    cdef double t
    cdef bint flip = b <= 0.0
    if flip:
        # reflect Z -> -Z so that the interval does not lie below zero (no recursion:
        # this function is inlined into the kernels' row loops)
        t = a
        a = -b
        b = -t
    if isfinite(a) and isfinite(b) and (b - a) * (1.0 + fabs(a)) < 1.0:
        r = _narrow(a, b)
    elif a >= 0.0:
        r = _upper(a, b)
    else:
        r = _straddle(a, b)
    if flip:
        r.m = -r.m
        r.c3 = -r.c3
    return r


cdef inline double _dot(const double* x, const double* y, Py_ssize_t p) noexcept nogil:
    # four independent partial sums: vectorisable without reassociating by -ffast-math
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef Py_ssize_t j = 0
    while j + 4 <= p:
        s0 = s0 + x[j] * y[j]
        s1 = s1 + x[j + 1] * y[j + 1]
        s2 = s2 + x[j + 2] * y[j + 2]
        s3 = s3 + x[j + 3] * y[j + 3]
        j = j + 4
    while j < p:
        s0 = s0 + x[j] * y[j]
        j = j + 1
    return (s0 + s1) + (s2 + s3)


cdef inline void _axpy(double a, const double* x, double* y, Py_ssize_t p) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(p):
        y[j] = y[j] + a * x[j]


def truncnorm_moments(const double[::1] a, const double[::1] b, double[:, ::1] out):
    """Fill ``out[i] = (log P, mean, c2, c3, c4)`` for Z ~ N(0,1) on (a[i], b[i]).

    Requires a[i] < b[i]; infinite limits allowed.  Used by tests and by
    ``predict``; the regression kernels inline the same code.
    """
    cdef Py_ssize_t i, n = a.shape[0]
    cdef Moments r
    with nogil:
        for i in range(n):
            r = _moments(a[i], b[i])
            out[i, 0] = r.logp
            out[i, 1] = r.m
            out[i, 2] = r.c2
            out[i, 3] = r.c3
            out[i, 4] = r.c4


def n_chunks(Py_ssize_t n):
    """Number of row chunks the kernels split ``n`` rows into."""
    return (n + CHUNK - 1) // CHUNK


def censreg_estep(const double[:, ::1] X, const double[::1] lo, const double[::1] hi,
                  const double[::1] off, const double[::1] ref, const double[::1] w,
                  const double[::1] beta, double sigma, double[:, ::1] part_xe,
                  double[:, ::1] part_s, int n_threads):
    """One pass of the censored-regression E-step.

    For each row, with mu = off + x'beta, the latent response y* ~ N(mu, sigma^2)
    is known to lie in [lo, hi] (lo == hi: observed exactly).  The statistics are
    taken about a fixed reference ``ref`` (one value per row, the same at every
    iteration), so that they add up over rows *and* over parameter values: with
    e = E[y*] - ref and v = Var[y*], each chunk c accumulates

    * ``part_xe[c, :] = sum w * e * x``
    * ``part_s[c, 0] = sum w * loglik_i`` (observed-data log-likelihood)
    * ``part_s[c, 1] = sum w * (e^2 + v)``
    * ``part_s[c, 2] = number of rows with a non-finite result``

    ``part_xe`` and ``part_s`` must be zero-initialised, of shape
    (n_chunks(n), p) and (n_chunks(n), 3).
    """
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1]
    cdef Py_ssize_t nch = (n + CHUNK - 1) // CHUNK
    cdef Py_ssize_t c, i, j, start, stop
    cdef double mu, a, b, e, v, ll, z, wi, acc_ll, acc_s, bad
    cdef double logsig = log(sigma), inv_sig = 1.0 / sigma
    cdef const double* xi
    cdef const double* bp = &beta[0]
    cdef double* acc
    cdef Moments mo
    for c in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        start = c * CHUNK
        stop = start + CHUNK
        if stop > n:
            stop = n
        acc_ll = 0.0
        acc_s = 0.0
        bad = 0.0
        acc = &part_xe[c, 0]
        for i in range(start, stop):
            xi = &X[i, 0]
            mu = off[i] + _dot(xi, bp, p)
            wi = w[i]
            if lo[i] == hi[i]:
                e = lo[i] - mu
                z = e * inv_sig
                v = 0.0
                ll = -0.5 * z * z - logsig - LOG_SQRT_2PI
            else:
                a = (lo[i] - mu) * inv_sig
                b = (hi[i] - mu) * inv_sig
                mo = _moments(a, b)
                e = sigma * mo.m
                v = sigma * sigma * mo.c2
                ll = mo.logp
            if not (isfinite(ll) and isfinite(e)):
                bad = bad + 1.0
            e = e + (mu - ref[i])
            acc_ll = acc_ll + wi * ll
            acc_s = acc_s + wi * (e * e + v)
            _axpy(wi * e, xi, acc, p)
        part_s[c, 0] = acc_ll
        part_s[c, 1] = acc_s
        part_s[c, 2] = bad


def censreg_louis(const double[:, ::1] X, const double[::1] lo, const double[::1] hi,
                  const double[::1] off, const double[::1] w, const double[::1] beta,
                  double sigma, double[:, ::1] part_v, double[:, :, ::1] part_mm,
                  double[:, ::1] part_s, int n_threads):
    """One pass giving the log-likelihood, the score and Louis' pieces.

    With m, c2, c3, c4 the conditional mean and central moments of the
    standardised latent response (m = z and c_k = 0 for an exact row), each
    chunk c accumulates

    * ``part_v[c, :p]   = sum w m x``
    * ``part_v[c, p:]   = sum w (c3 + 2 m c2) x``
    * ``part_mm[c]      = sum w c2 x x'`` (upper triangle; censored rows only)
    * ``part_s[c, :]    = (sum w loglik, sum w (c2 + m^2),
      sum w (c4 - c2^2 + 4 m c3 + 4 m^2 c2), number of non-finite rows)``

    from which the model assembles the score and the complete and missing
    information.  Arrays must be zero-initialised: (nch, 2p), (nch, p, p), (nch, 4).
    """
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1]
    cdef Py_ssize_t nch = (n + CHUNK - 1) // CHUNK
    cdef Py_ssize_t c, i, j, k, start, stop
    cdef double mu, m, c2, c3, c4, ll, z, wi, t, acc_ll, acc_2, acc_4, bad
    cdef double logsig = log(sigma), inv_sig = 1.0 / sigma
    cdef const double* xi
    cdef const double* bp = &beta[0]
    cdef double* accm
    cdef double* accv
    cdef double* mm
    cdef Moments mo
    for c in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        start = c * CHUNK
        stop = start + CHUNK
        if stop > n:
            stop = n
        acc_ll = 0.0
        acc_2 = 0.0
        acc_4 = 0.0
        bad = 0.0
        accm = &part_v[c, 0]
        accv = &part_v[c, p]
        mm = &part_mm[c, 0, 0]
        for i in range(start, stop):
            xi = &X[i, 0]
            mu = off[i] + _dot(xi, bp, p)
            wi = w[i]
            if lo[i] == hi[i]:
                z = (lo[i] - mu) * inv_sig
                m = z
                c2 = 0.0
                c3 = 0.0
                c4 = 0.0
                ll = -0.5 * z * z - logsig - LOG_SQRT_2PI
            else:
                mo = _moments((lo[i] - mu) * inv_sig, (hi[i] - mu) * inv_sig)
                m = mo.m
                c2 = mo.c2
                c3 = mo.c3
                c4 = mo.c4
                ll = mo.logp
                t = wi * (c3 + 2.0 * m * c2)
                _axpy(t, xi, accv, p)
                t = wi * c2
                for j in range(p):
                    _axpy(t * xi[j], xi + j, mm + j * p + j, p - j)
            if not (isfinite(ll) and isfinite(m)):
                bad = bad + 1.0
            acc_ll = acc_ll + wi * ll
            acc_2 = acc_2 + wi * (c2 + m * m)
            acc_4 = acc_4 + wi * (c4 - c2 * c2 + 4.0 * m * c3 + 4.0 * m * m * c2)
            _axpy(wi * m, xi, accm, p)
        part_s[c, 0] = acc_ll
        part_s[c, 1] = acc_2
        part_s[c, 2] = acc_4
        part_s[c, 3] = bad


def censreg_moments(const double[::1] lo, const double[::1] hi, const double[::1] mu,
                    const double[::1] sigma, double[:, ::1] out, int n_threads):
    """Per-row standardised conditional moments for the censored-normal model.

    Fills ``out[i] = (loglik_i, m, c2, c3, c4)`` where m and c_k are the mean and
    central moments of Z = (y* - mu_i) / sigma_i given the observation (one scale
    per row: a constant array for the homoskedastic model).  For an exact row
    m = z and the central moments are zero.  The log-likelihood is not weighted.
    """
    cdef Py_ssize_t n = lo.shape[0]
    cdef Py_ssize_t nch = (n + CHUNK - 1) // CHUNK
    cdef Py_ssize_t c, i, start, stop
    cdef double z, inv_sig
    cdef Moments mo
    for c in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        start = c * CHUNK
        stop = start + CHUNK
        if stop > n:
            stop = n
        for i in range(start, stop):
            inv_sig = 1.0 / sigma[i]
            if lo[i] == hi[i]:
                z = (lo[i] - mu[i]) * inv_sig
                out[i, 0] = -0.5 * z * z + log(inv_sig) - LOG_SQRT_2PI
                out[i, 1] = z
                out[i, 2] = 0.0
                out[i, 3] = 0.0
                out[i, 4] = 0.0
            else:
                mo = _moments((lo[i] - mu[i]) * inv_sig, (hi[i] - mu[i]) * inv_sig)
                out[i, 0] = mo.logp
                out[i, 1] = mo.m
                out[i, 2] = mo.c2
                out[i, 3] = mo.c3
                out[i, 4] = mo.c4


cdef inline double _completed(double lo, double hi) noexcept nogil:
    """The completed response of the start: the interval's midpoint when both bounds are
    finite, else the finite bound."""
    if isfinite(lo) and isfinite(hi):
        return 0.5 * (lo + hi)
    return lo if isfinite(lo) else hi


def censreg_start_pass(const double[:, ::1] X, const double[::1] lo, const double[::1] hi,
                       const double[::1] off, const double[::1] w, double[:, ::1] part_xy,
                       double[:, ::1] part_n, int n_threads):
    """The data's censoring counts and X'W y for the completed response (the start).

    The completed response of a row is the midpoint of its interval when both bounds are
    finite, else its finite bound, less the offset.  Each chunk c writes

    * ``part_xy[c, :] = sum w * y * x``;
    * ``part_n[c, :]``: the rows observed exactly (lo == hi), left-censored (lo = -inf,
      hi finite), right-censored (lo finite, hi = +inf) and interval-censored (both
      finite, lo != hi).

    ``part_xy`` and ``part_n`` must be zero-initialised, of shape (n_chunks(n), p) and
    (n_chunks(n), 4).
    """
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1]
    cdef Py_ssize_t nch = (n + CHUNK - 1) // CHUNK
    cdef Py_ssize_t c, i, start, stop
    cdef double y, n_ex, n_l, n_r, n_i
    cdef int flo, fhi
    cdef double* acc
    if lo.shape[0] != n or hi.shape[0] != n or off.shape[0] != n or w.shape[0] != n \
            or part_xy.shape[0] < nch or part_xy.shape[1] != p or part_n.shape[0] < nch \
            or part_n.shape[1] != 4:
        raise ValueError("inconsistent shapes")
    for c in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        start = c * CHUNK
        stop = start + CHUNK
        if stop > n:
            stop = n
        n_ex = 0.0
        n_l = 0.0
        n_r = 0.0
        n_i = 0.0
        acc = &part_xy[c, 0]
        for i in range(start, stop):
            flo = isfinite(lo[i])
            fhi = isfinite(hi[i])
            if lo[i] == hi[i]:
                n_ex = n_ex + 1.0
            elif flo and fhi:
                n_i = n_i + 1.0
            elif fhi and lo[i] == -INFINITY:
                n_l = n_l + 1.0
            elif flo and hi[i] == INFINITY:
                n_r = n_r + 1.0
            y = _completed(lo[i], hi[i]) - off[i]
            _axpy(w[i] * y, &X[i, 0], acc, p)
        part_n[c, 0] = n_ex
        part_n[c, 1] = n_l
        part_n[c, 2] = n_r
        part_n[c, 3] = n_i


def censreg_start_resid(const double[:, ::1] X, const double[::1] lo, const double[::1] hi,
                        const double[::1] off, const double[::1] w, const double[::1] beta,
                        double[:, ::1] part, int n_threads):
    """The residuals r = y - x'beta of the completed response y (see
    :func:`censreg_start_pass`) at the least-squares ``beta``: each chunk c writes
    ``part[c] = (sum w r^2, max |r|, max |y|, min y, max y)``; ``part`` has shape
    (n_chunks(n), 5) (no initialisation needed)."""
    cdef Py_ssize_t n = X.shape[0], p = X.shape[1]
    cdef Py_ssize_t nch = (n + CHUNK - 1) // CHUNK
    cdef Py_ssize_t c, i, start, stop
    cdef double y, r, s2, rmax, ymax, ylo, yhi
    cdef const double* bp = &beta[0]
    if lo.shape[0] != n or hi.shape[0] != n or off.shape[0] != n or w.shape[0] != n \
            or beta.shape[0] != p or part.shape[0] < nch or part.shape[1] != 5:
        raise ValueError("inconsistent shapes")
    for c in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        start = c * CHUNK
        stop = start + CHUNK
        if stop > n:
            stop = n
        s2 = 0.0
        rmax = 0.0
        ymax = 0.0
        ylo = INFINITY
        yhi = -INFINITY
        for i in range(start, stop):
            y = _completed(lo[i], hi[i]) - off[i]
            r = y - _dot(&X[i, 0], bp, p)
            s2 = s2 + w[i] * r * r
            if fabs(r) > rmax:
                rmax = fabs(r)
            if fabs(y) > ymax:
                ymax = fabs(y)
            if y < ylo:
                ylo = y
            if y > yhi:
                yhi = y
        part[c, 0] = s2
        part[c, 1] = rmax
        part[c, 2] = ymax
        part[c, 3] = ylo
        part[c, 4] = yhi
