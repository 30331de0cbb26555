/* Emission pass of the HMM kernels (see hmm_kernels.pyx): log-densities of a block of
 * rows, their row maxima and the scaled densities exp(l - max).
 *
 * The block of m rows is held transposed, L[k * m + i] for state k and row i, so the
 * loops run over contiguous rows and vectorise.  With GCC on x86-64 Linux each function
 * is compiled for AVX-512, AVX2 and the baseline and the best is chosen when the
 * extension is loaded (target_clones), so the build stays portable.  The exponential
 * is inlined and branch-free so that it vectorises too (libm's exp does not).
 */
#ifndef EMSTATS_HMM_ROWS_H
#define EMSTATS_HMM_ROWS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define HMM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HMM_CLONES
#endif

/* exp(y) for -708 <= y <= 0.  y = n log 2 + r, |r| <= log(2) / 2, with n rounded by
 * adding and subtracting 1.5 * 2^52; exp(r) by Horner's rule on the Taylor polynomial
 * of degree 13 (truncation error below 4e-18 relative); 2^n built in the exponent
 * field. */
static inline double hmm_exp_clamped(double y)
{
    const double shift = 6755399441055744.0;            /* 1.5 * 2^52 */
    const double inv_ln2 = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01;   /* 32 significant bits */
    const double ln2_lo = 1.90821492927058770002e-10;
    double t = y * inv_ln2 + shift;
    double n = t - shift;
    double r = (y - n * ln2_hi) - n * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
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
    int64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - (int64_t)0x4338000000000000LL + 1023) << 52;   /* 2^n */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Gaussian, diagonal covariance: L[k * m + i] = lc[k] - 0.5 sum_j (x_ij - mu_kj)^2 iv_kj
 * for rows r0 .. r0 + m - 1 of the transposed data Xt (d x T, row stride T). */
HMM_CLONES
static void hmm_diag_logdens(const double *Xt, int64_t T, int64_t r0, int64_t m, int64_t d,
                             int64_t K, const double *mu, const double *iv, const double *lc,
                             double *L)
{
    for (int64_t k = 0; k < K; k++) {
        double *Lk = L + k * m;
        for (int64_t i = 0; i < m; i++)
            Lk[i] = 0.0;
        for (int64_t j = 0; j < d; j++) {
            const double *x = Xt + j * T + r0;
            const double mkj = mu[k * d + j], vkj = iv[k * d + j];
            for (int64_t i = 0; i < m; i++) {
                double r = x[i] - mkj;
                Lk[i] += r * r * vkj;
            }
        }
        const double c = lc[k];
        for (int64_t i = 0; i < m; i++)
            Lk[i] = c - 0.5 * Lk[i];
    }
}

/* Row maxima mx[i] = max_k L[k * m + i]; then b[i * K + k] = exp(L - mx) (or, with
 * log_only, the log-densities themselves).  Rows whose maximum is not finite get zero
 * densities and maximum 0; their number is returned.  L is overwritten. */
HMM_CLONES
static int hmm_max_exp(double *L, int64_t m, int64_t K, double *b, double *mx, int log_only)
{
    int bad = 0;
    if (log_only) {
        for (int64_t k = 0; k < K; k++)
            for (int64_t i = 0; i < m; i++)
                b[i * K + k] = L[k * m + i];
        return 0;
    }
    for (int64_t i = 0; i < m; i++)
        mx[i] = L[i];
    for (int64_t k = 1; k < K; k++) {
        const double *Lk = L + k * m;
        for (int64_t i = 0; i < m; i++)
            mx[i] = Lk[i] > mx[i] ? Lk[i] : mx[i];
    }
    for (int64_t i = 0; i < m; i++) {
        if (!isfinite(mx[i])) {
            bad++;
            mx[i] = 0.0;
            for (int64_t k = 0; k < K; k++)
                L[k * m + i] = -INFINITY;
        }
    }
    for (int64_t k = 0; k < K; k++) {
        double *Lk = L + k * m;
        for (int64_t i = 0; i < m; i++) {
            double y = Lk[i] - mx[i];
            double e = hmm_exp_clamped(y < -708.0 ? -708.0 : y);
            Lk[i] = y < -708.0 ? 0.0 : e;
        }
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t k = 0; k < K; k++)
            b[i * K + k] = L[k * m + i];
    return bad;
}

#endif
