/* The row pass of gmm_small.small_estep, over blocks of rows held transposed.
 *
 * The rows come as XT (d x n, row a of XT is variable a), so that every loop of a block
 * runs over EMS_BLK consecutive rows of one vector: the forward substitutions with the
 * Cholesky factors, the clamped exponential and the weighted sums vectorise (``omp simd``,
 * compiled for AVX-512, AVX2 and the baseline, see EMSTATS_CLONES in emmath.h).  On a
 * few hundred rows and a handful of components this is several times the speed of one
 * row at a time.
 *
 * Inputs: L (K x d x d) the lower Cholesky factors of the covariances, idg (K x d) the
 * inverses of their diagonals, mu (K x d) the means, logc (K) log w_k - d/2 log 2 pi -
 * log det L_k (-inf for an empty component), c (d) the centre of the statistics.
 * Outputs, accumulated (the caller zeroes them): aN (K), a1 (K x d) and the lower
 * triangle of a2 (K x d x d, only its diagonal when ``diag``), the sums
 * N_k, sum r_ik (x_i - c), sum r_ik (x_i - c)(x_i - c)'; resp (n x K) when ``resp`` is
 * not NULL; *ll the log-likelihood.  work: (K + 2 d + 3) EMS_BLK doubles.
 * Returns 0, or 2 when a row has zero density under every component (or a NaN).
 *
 * The rows are cut into equal blocks (one block up to EMS_BLK rows), so that few of
 * the weighted sums end in a short remainder.  A row's log-likelihood is its largest
 * log-density plus the log of its sum of exponentials (in [1, K]); those sums are
 * multiplied over EMS_LOG_GROUP rows before one log, instead of one log per row (the
 * log is not vectorised; the product's rounding, EMS_LOG_GROUP half-ulps relative, is
 * far below the stopping rule's resolution).
 */
#ifndef EMSTATS_GMM_SMALL_H
#define EMSTATS_GMM_SMALL_H

#include "emmath.h"

/* rows per block (the row range is cut into equal blocks of at most EMS_BLK) */
#define EMS_BLK 256
/* rows whose sums of exponentials are multiplied before one log (each sum is in
 * [1, K], so the product of EMS_LOG_GROUP of them stays finite for K < 2^32) */
#define EMS_LOG_GROUP 32

EMSTATS_CLONES
static int emstats_small_pass(long n, long d, long K, const double *XT, const double *c,
                    const double *L, const double *idg, const double *mu,
                    const double *logc, double *aN, double *a1, double *a2,
                    double *resp, int diag, double *work, double *ll_out)
{
    double *lp = work;
    double *z = lp + K * EMS_BLK;
    double *e = z + d * EMS_BLK;
    double *top = e + d * EMS_BLK;
    double *inv = top + EMS_BLK;
    double *r = inv + EMS_BLK;
    double ll = 0.0;
    long nb = (n + EMS_BLK - 1) / EMS_BLK;
    long bs = nb > 0 ? (n + nb - 1) / nb : 0;
    long i0, j, k, a, b, m, g;
    for (i0 = 0; i0 < n; i0 += bs) {
        m = n - i0 < bs ? n - i0 : bs;
        for (j = 0; j < m; j++)
            top[j] = -INFINITY;
        for (k = 0; k < K; k++) {
            const double *Lk = L + k * d * d;
            double *lk = lp + k * EMS_BLK;
            const double lc = logc[k];
            for (j = 0; j < m; j++)
                lk[j] = 0.0;
            for (a = 0; a < d; a++) {
                const double *xa = XT + a * n + i0;
                double *za = z + a * EMS_BLK;
                const double mua = mu[k * d + a], ia = idg[k * d + a];
#pragma omp simd
                for (j = 0; j < m; j++)
                    za[j] = xa[j] - mua;
                for (b = 0; b < a; b++) {
                    const double l = Lk[a * d + b];
                    const double *zb = z + b * EMS_BLK;
#pragma omp simd
                    for (j = 0; j < m; j++)
                        za[j] -= l * zb[j];
                }
                if (a + 1 < d) {
#pragma omp simd
                    for (j = 0; j < m; j++) {
                        za[j] *= ia;
                        lk[j] += za[j] * za[j];
                    }
                } else {
                    /* the last variable: the log-density, and the running maximum over
                     * the components */
#pragma omp simd
                    for (j = 0; j < m; j++) {
                        const double q = za[j] * ia;
                        const double v = lc - 0.5 * (lk[j] + q * q);
                        lk[j] = v;
                        top[j] = v > top[j] ? v : top[j];
                    }
                }
            }
        }
        for (j = 0; j < m; j++) {
            if (!(top[j] > -INFINITY))
                return 2;
            inv[j] = 0.0;
        }
        for (k = 0; k < K; k++) {
            double *lk = lp + k * EMS_BLK;
#pragma omp simd
            for (j = 0; j < m; j++) {
                const double v = emstats_exp_neg(lk[j] - top[j]);
                lk[j] = v;
                inv[j] += v;
            }
        }
        {
            double st = 0.0;
#pragma omp simd reduction(+:st)
            for (j = 0; j < m; j++)
                st += top[j];
            ll += st;
        }
        for (g = 0; g < m; g += EMS_LOG_GROUP) {
            long ge = g + EMS_LOG_GROUP < m ? g + EMS_LOG_GROUP : m;
            double p = 1.0;
#pragma omp simd reduction(*:p)
            for (j = g; j < ge; j++)
                p *= inv[j];
            ll += log(p);
        }
#pragma omp simd
        for (j = 0; j < m; j++)
            inv[j] = 1.0 / inv[j];
        for (a = 0; a < d; a++) {
            const double *xa = XT + a * n + i0;
            double *ea = e + a * EMS_BLK;
            const double ca = c[a];
#pragma omp simd
            for (j = 0; j < m; j++)
                ea[j] = xa[j] - ca;
        }
        for (k = 0; k < K; k++) {
            const double *lk = lp + k * EMS_BLK;
            double s = 0.0;
#pragma omp simd reduction(+:s)
            for (j = 0; j < m; j++) {
                r[j] = lk[j] * inv[j];
                s += r[j];
            }
            aN[k] += s;
            if (resp != NULL)
                for (j = 0; j < m; j++)
                    resp[(i0 + j) * K + k] = r[j];
            for (a = 0; a < d; a++) {
                const double *ea = e + a * EMS_BLK;
                double *t = z;      /* scratch: r e_a */
                double s1 = 0.0;
#pragma omp simd reduction(+:s1)
                for (j = 0; j < m; j++) {
                    t[j] = r[j] * ea[j];
                    s1 += t[j];
                }
                a1[k * d + a] += s1;
                for (b = diag ? a : 0; b <= a; b++) {
                    const double *eb = e + b * EMS_BLK;
                    double s2 = 0.0;
#pragma omp simd reduction(+:s2)
                    for (j = 0; j < m; j++)
                        s2 += t[j] * eb[j];
                    a2[(k * d + a) * d + b] += s2;
                }
            }
        }
    }
    *ll_out = ll;
    return 0;
}

#endif
