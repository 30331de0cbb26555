/* Shared row arithmetic of the emstats kernels: the clamped exponential, the
 * log-sum-exp of a row, and the emission log-densities of each family.  Both the
 * Gaussian-mixture E-step (gmm_kernels.pyx) and the HMM kernels (hmm_kernels.pyx)
 * compute their log-densities here.
 *
 * Layout.  A block of m rows is held *transposed*: Lt[k * m + i] is the
 * log-density of row i under component (state) k, and a matrix of per-row
 * vectors, e.g. whitened residuals, is Yt[(k * d + j) * m + i].  Every loop then
 * runs over the m rows of a contiguous vector and vectorises without horizontal
 * reductions.  With GCC on x86-64 Linux the block functions are compiled for
 * AVX-512, AVX2 and the baseline, and the best version is picked when the
 * extension is loaded (target_clones), so the build stays portable.
 *
 * Everything here is plain C without global state: safe to call without the GIL
 * and from any number of threads.
 */
#ifndef EMSTATS_EMMATH_H
#define EMSTATS_EMMATH_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* (a kernel uses only some of the functions below: "unused" silences the warning) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EMSTATS_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), unused))
#elif defined(__GNUC__)
#define EMSTATS_CLONES __attribute__((unused))
#else
#define EMSTATS_CLONES
#endif

/* exp(x) for x <= 0 (x may be -inf): 0 below -708, NaN for NaN.
 * x = n log 2 + r with |r| <= log(2) / 2, n rounded by adding and subtracting
 * 1.5 * 2^52; exp(r) by Horner's rule on the Taylor polynomial of degree 13
 * (truncation error below 4e-18 relative); 2^n built in the exponent field.
 * Branch-free, so that it vectorises (libm's exp does not). */
static inline double emstats_exp_neg(double x)
{
    const double shift = 6755399441055744.0; /* 1.5 * 2^52 */
    const double inv_ln2 = 1.4426950408889634074;
    const double ln2_hi = 6.93147180369123816490e-01; /* 32 significant bits */
    const double ln2_lo = 1.90821492927058770002e-10;
    double y = x < -708.0 ? -708.0 : x;
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
    bits = (bits - (int64_t)0x4338000000000000LL + 1023) << 52; /* 2^n */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    double res = p * scale;
    return x < -708.0 ? 0.0 : res;
}

/* ---------------------------------------------------------------------------
 * Log-sum-exp over the K components of each row of a transposed block.
 * ------------------------------------------------------------------------- */

/* row_max[i] = max_k Lt[k m + i]; then Lt[k m + i] = exp(Lt[k m + i] - row_max[i])
 * and row_sum[i] = sum_k of those.  A row whose maximum is not finite gets zero
 * exponentials (and row_sum 0; row_max keeps the non-finite maximum).  Returns
 * the number of such rows. */
EMSTATS_CLONES
static long emstats_rows_max_exp(long m, long K, double *Lt, double *row_max, double *row_sum)
{
    long bad = 0;
    for (long i = 0; i < m; i++)
        row_max[i] = Lt[i];
    for (long k = 1; k < K; k++) {
        const double *l = Lt + k * m;
        for (long i = 0; i < m; i++)
            row_max[i] = l[i] > row_max[i] ? l[i] : row_max[i];
    }
    for (long i = 0; i < m; i++) {
        row_sum[i] = 0.0;
        if (!isfinite(row_max[i])) {
            bad++;
            for (long k = 0; k < K; k++)
                Lt[k * m + i] = -INFINITY;
        }
    }
    for (long k = 0; k < K; k++) {
        double *l = Lt + k * m;
        for (long i = 0; i < m; i++) {
            double s = row_max[i];
            s = fabs(s) <= DBL_MAX ? s : 0.0;
            double e = emstats_exp_neg(l[i] - s);
            l[i] = e;
            row_sum[i] += e;
        }
    }
    return bad;
}

/* Normalised exponentials: Lt becomes the responsibilities exp(l - lse) and lse[i]
 * the log-sum-exp of row i (sum is scratch of m doubles).  A row whose
 * log-densities are not finite in any component, or contain a NaN, gets zero
 * responsibilities and lse = its maximum (-inf for a NaN); the number of such rows
 * is returned. */
EMSTATS_CLONES
static long emstats_rows_softmax(long m, long K, double *Lt, double *lse, double *sum)
{
    long bad = 0;
    (void)emstats_rows_max_exp(m, K, Lt, lse, sum);
    for (long i = 0; i < m; i++) {
        if (isfinite(lse[i]) && sum[i] > 0.0) {
            lse[i] += log(sum[i]);
            sum[i] = 1.0 / sum[i];
        } else {
            lse[i] = lse[i] == lse[i] ? lse[i] : -INFINITY;
            sum[i] = 0.0;
            bad++;
        }
    }
    for (long k = 0; k < K; k++) {
        double *l = Lt + k * m;
        for (long i = 0; i < m; i++) {
            double v = l[i] * sum[i];
            l[i] = v == v ? v : 0.0;
        }
    }
    return bad;
}

/* out (m x K, row-major) = the transpose of Lt (K x m). */
static inline void emstats_untranspose(const double *Lt, long m, long K, double *out)
{
    for (long i = 0; i < m; i++)
        for (long k = 0; k < K; k++)
            out[i * K + k] = Lt[k * m + i];
}

/* ---------------------------------------------------------------------------
 * Emission log-densities of a block of m rows, Lt[k m + i] (row i, component k).
 * ------------------------------------------------------------------------- */

/* Poisson: Lt = x_i log_rates[k] - rates[k] - log_xfact[i], with x_i log_rates[k]
 * read as 0 when x_i = 0 (counts x and log(x!) of the block's rows). */
EMSTATS_CLONES
static void emstats_poisson_logdens(long m, long K, const double *counts, const double *log_xfact,
                                    const double *log_rates, const double *rates, double *Lt)
{
    for (long k = 0; k < K; k++) {
        double *l = Lt + k * m;
        const double lr = log_rates[k], rk = rates[k];
        for (long i = 0; i < m; i++) {
            double x = counts[i];
            double v = x == 0.0 ? -rk : x * lr - rk;
            l[i] = v - log_xfact[i];
        }
    }
}

/* Gaussian, diagonal covariance, in whitened form: the residual of row i in
 * coordinate j is y = x_ij inv_sd[k d + j] - scaled_means[k d + j]
 * (scaled_means = means * inv_sd) and Lt = log_const[k] - |y|^2 / 2.  Column j of
 * the block's (transposed) data is Xt + j * ldx.  When Yt is not NULL the
 * residuals are stored there (K d x m). */
EMSTATS_CLONES
static void emstats_gauss_diag_logdens(long m, long d, long K, const double *Xt, long ldx,
                                       const double *inv_sd, const double *scaled_means,
                                       const double *log_const, double *Yt, double *Lt)
{
    for (long k = 0; k < K; k++) {
        double *l = Lt + k * m;
        for (long i = 0; i < m; i++)
            l[i] = 0.0;
        for (long j = 0; j < d; j++) {
            const long kj = k * d + j;
            const double *x = Xt + j * ldx;
            const double u = inv_sd[kj], b = scaled_means[kj];
            if (Yt != NULL) {
                double *y = Yt + kj * m;
                for (long i = 0; i < m; i++) {
                    double v = x[i] * u - b;
                    y[i] = v;
                    l[i] += v * v;
                }
            } else {
                for (long i = 0; i < m; i++) {
                    double v = x[i] * u - b;
                    l[i] += v * v;
                }
            }
        }
        const double c = log_const[k];
        for (long i = 0; i < m; i++)
            l[i] = c - 0.5 * l[i];
    }
}

/* Gaussian, full covariance, through a triangular factor W_k with
 * Sigma_k^-1 = W_k' W_k (the inverse Cholesky factor, or U_k' for U_k = L_k^-T):
 * on entry Yt[(k d + j) m + i] = (W_k x_i)_j (one matrix product for the block,
 * done by the caller with BLAS); the residuals y = W_k x_i - shift_k
 * (shift_k = W_k mu_k) are left in Yt and Lt = log_const[k] - |y|^2 / 2. */
EMSTATS_CLONES
static void emstats_gauss_whitened_logdens(long m, long d, long K, const double *shift,
                                           const double *log_const, double *Yt, double *Lt)
{
    for (long k = 0; k < K; k++) {
        double *l = Lt + k * m;
        for (long i = 0; i < m; i++)
            l[i] = 0.0;
        for (long j = 0; j < d; j++) {
            const long kj = k * d + j;
            double *y = Yt + kj * m;
            const double b = shift[kj];
            for (long i = 0; i < m; i++) {
                double v = y[i] - b;
                y[i] = v;
                l[i] += v * v;
            }
        }
        const double c = log_const[k];
        for (long i = 0; i < m; i++)
            l[i] = c - 0.5 * l[i];
    }
}

/* W_k mu_k for K lower-triangular W_k (row-major d x d each, inv_chol[(k d + i) d + j])
 * and means mu_k (means[k d + j]): the shift of emstats_gauss_whitened_logdens. */
static inline void emstats_tri_shift(long d, long K, const double *inv_chol, const double *means,
                                     double *shift)
{
    for (long k = 0; k < K; k++)
        for (long i = 0; i < d; i++) {
            const double *w = inv_chol + (k * d + i) * d;
            double s = 0.0;
            for (long j = 0; j <= i; j++)
                s += w[j] * means[k * d + j];
            shift[k * d + i] = s;
        }
}

/* Categorical: Lt = log_probs[k M + codes[i]] (codes of the block's rows, 0 <= code < M). */
static inline void emstats_categorical_logdens(long m, long K, long M, const int64_t *codes,
                                               const double *log_probs, double *Lt)
{
    for (long k = 0; k < K; k++) {
        double *l = Lt + k * m;
        const double *lp = log_probs + k * M;
        for (long i = 0; i < m; i++)
            l[i] = lp[codes[i]];
    }
}

#endif
