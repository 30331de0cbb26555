/* Row arithmetic of the Gaussian-mixture E-step (see gmm_kernels.pyx).
 *
 * A sub-block of m rows is held *transposed*: Yt[(k d + j) * m + i] is the j-th
 * whitened residual of row i under component k, and Lt[k * m + i] its
 * log-weighted density.  Every loop below then runs over the m rows of a
 * contiguous vector, which the compiler vectorises without horizontal
 * reductions.  On x86-64 with GCC the functions are compiled for AVX-512, AVX2
 * and the baseline and the best version is picked at load time (target_clones),
 * so the extension stays portable.  The exponential is a branch-free polynomial
 * (relative error about 1 ulp on [-708, 0]) because libm's exp does not
 * vectorise and would dominate the E-step.
 */
#ifndef EMSTATS_GMM_ROWS_H
#define EMSTATS_GMM_ROWS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EMSTATS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EMSTATS_CLONES
#endif

/* exp(x) for x <= 0 (x may be -inf): 0 below -708. */
static inline double emstats_exp_neg(double x)
{
    const double log2e = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double magic = 6755399441055744.0; /* 1.5 * 2^52: round to nearest integer */
    double xc = x < -708.0 ? -708.0 : x;
    double t = xc * log2e + magic;
    double nf = t - magic;
    double r = (xc - nf * ln2_hi) - nf * ln2_lo; /* |r| <= ln2 / 2 */
    /* Taylor polynomial of degree 12 (truncation error < 2e-16 on |r| <= 0.347) */
    double p = 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t ti;
    memcpy(&ti, &t, sizeof ti);
    int64_t n = ti - (int64_t)0x4338000000000000LL; /* the integer nf */
    int64_t bits = (n + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    double res = p * scale;
    return x < -708.0 ? 0.0 : res;
}

/* Residuals and log-weighted densities.
 * full (diag == 0): Yt holds (X_b W)' on entry; b is subtracted in place.
 * diag: Yt[(k d + j), i] = Xt[j, i] u[k d + j] - b[k d + j], with Xt[j, i] at
 * Xt[j * ldx + i] (the block's columns of the transposed data).
 * Lt[k, i] = logc[k] - |y_ik|^2 / 2. */
EMSTATS_CLONES
static void emstats_gmm_logdens(const double *Xt, long ldx, long m, long d, long K,
                                const double *u,
                                const double *b, const double *logc, int diag, double *Yt,
                                double *Lt)
{
    for (long k = 0; k < K; k++) {
        double *l = Lt + k * m;
        for (long i = 0; i < m; i++)
            l[i] = 0.0;
        for (long j = 0; j < d; j++) {
            long kj = k * d + j;
            double *y = Yt + kj * m;
            double bk = b[kj];
            if (diag) {
                const double *x = Xt + j * ldx;
                double uk = u[kj];
                for (long i = 0; i < m; i++) {
                    double v = x[i] * uk - bk;
                    y[i] = v;
                    l[i] += v * v;
                }
            } else {
                for (long i = 0; i < m; i++) {
                    double v = y[i] - bk;
                    y[i] = v;
                    l[i] += v * v;
                }
            }
        }
        double c = logc[k];
        for (long i = 0; i < m; i++)
            l[i] = c - 0.5 * l[i];
    }
}

/* Log-sum-exp over components: Lt becomes the responsibilities and llrow the
 * per-row log-likelihood (rowmax is scratch of m doubles).  Returns the number
 * of rows whose log-density was not finite in every component (their
 * responsibilities are set to zero). */
EMSTATS_CLONES
static long emstats_gmm_lse(long m, long K, double *Lt, double *llrow, double *rowsum)
{
    long bad = 0;
    for (long i = 0; i < m; i++)
        llrow[i] = Lt[i];
    for (long k = 1; k < K; k++) {
        const double *l = Lt + k * m;
        for (long i = 0; i < m; i++)
            llrow[i] = l[i] > llrow[i] ? l[i] : llrow[i];
    }
    for (long i = 0; i < m; i++)
        rowsum[i] = 0.0;
    for (long k = 0; k < K; k++) {
        double *l = Lt + k * m;
        for (long i = 0; i < m; i++) {
            double e = emstats_exp_neg(l[i] - llrow[i]);
            l[i] = e;
            rowsum[i] += e;
        }
    }
    for (long i = 0; i < m; i++) {
        if (isfinite(llrow[i]) && rowsum[i] > 0.0) {
            llrow[i] += log(rowsum[i]);
            rowsum[i] = 1.0 / rowsum[i];
        } else {
            llrow[i] = llrow[i] == llrow[i] ? llrow[i] : -INFINITY;
            rowsum[i] = 0.0;
            bad++;
        }
    }
    for (long k = 0; k < K; k++) {
        double *l = Lt + k * m;
        for (long i = 0; i < m; i++) {
            double v = l[i] * rowsum[i];
            l[i] = v == v ? v : 0.0;
        }
    }
    return bad;
}

/* Sum of a[i] (and of a[i] b[i]) over i < m with eight independent accumulators
 * (vectorisable without reassociating, so the result is deterministic). */
static inline double emstats_sum(const double *a, long m)
{
    double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    long i = 0;
    for (; i + 8 <= m; i += 8)
        for (int q = 0; q < 8; q++)
            acc[q] += a[i + q];
    for (; i < m; i++)
        acc[0] += a[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Statistics of the block: pn[k] += sum_i r, ps[k d + j] += sum_i r y;
 * full: Zt = r * Yt (for the dgemm Z_k Y_k' done by the caller);
 * diag: td[k d + j] += sum_i r y^2. */
EMSTATS_CLONES
static void emstats_gmm_stats(long m, long d, long K, int diag, const double *Rt,
                              const double *Yt, double *Zt, double *pn, double *ps, double *td)
{
    for (long k = 0; k < K; k++) {
        const double *r = Rt + k * m;
        pn[k] += emstats_sum(r, m);
        for (long j = 0; j < d; j++) {
            long kj = k * d + j;
            const double *y = Yt + kj * m;
            double *z = Zt + kj * m;
            for (long i = 0; i < m; i++)
                z[i] = r[i] * y[i];
            ps[kj] += emstats_sum(z, m);
            if (diag) {
                for (long i = 0; i < m; i++)
                    z[i] *= y[i];
                td[kj] += emstats_sum(z, m);
            }
        }
    }
}

/* resp (m x K, row-major) = transpose of Rt (K x m). */
static void emstats_gmm_untranspose(const double *Rt, long m, long K, double *resp)
{
    for (long i = 0; i < m; i++)
        for (long k = 0; k < K; k++)
            resp[i * K + k] = Rt[k * m + i];
}

#endif
