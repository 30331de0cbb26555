/* Sufficient statistics of the Gaussian-mixture E-step (see gmm_kernels.pyx), in
 * whitened coordinates, for a sub-block of m rows held transposed (Rt[k * m + i]
 * the responsibilities, Yt[(k d + j) * m + i] the whitened residuals).  The
 * log-densities and the log-sum-exp that produce them are in emmath.h. */
#ifndef EMSTATS_GMM_STATS_H
#define EMSTATS_GMM_STATS_H

#include "emmath.h"

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

#endif
