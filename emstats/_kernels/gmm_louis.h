/* The row loop of gmm_louis.pyx: the weighted monomial moments of Louis' missing
 * information of the labels, for the rows of one chunk (see the module docstring there).
 *
 * The monomials of a row are the products phi_I * phi_J of its basis vector
 * phi = (1, y, y_a y_b); in the order of GaussianMixture's basis they come in runs with
 * one I and consecutive J, so a run is a scaled copy of a piece of phi (``n_runs``
 * runs: monomials run_at[r] .. run_at[r] + run_len[r] - 1 are phi[run_i[r]] times
 * phi[run_j[r]], phi[run_j[r] + 1], ...).  Each kept pair then adds its weight times
 * the monomials to its row of ``out`` (a scaled vector sum).  With GCC on x86-64 Linux the
 * loop is compiled for AVX-512, AVX2 and the baseline and picked at load time
 * (target_clones), as in emmath.h.  Plain C, no global state.
 */
#ifndef EMSTATS_GMM_LOUIS_H
#define EMSTATS_GMM_LOUIS_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define EMSTATS_LOUIS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define EMSTATS_LOUIS_CLONES
#endif

/* Rows [start, stop) of X (n x d, row-major) with responsibilities R (n x K): add the
 * moments of the rows of uncertain membership to out (K (K + 1) / 2 pairs x n_mono,
 * row-major: (k, k) for k = 0..K-1, then (k, l), k < l, in order).  A row is skipped when
 * the responsibilities other than the largest sum to at most ``certain``; in the other
 * rows the pairs (k, k) and (k, l) with r_k <= certain are.  ``work``: n_mono + 1 + d +
 * n_quad doubles.  Returns the number of rows that contributed. */
EMSTATS_LOUIS_CLONES
static long emstats_louis_rows(long start, long stop, long d, long K, const double* X,
                               const double* R, const double* centre, long n_quad,
                               const long* qa, const long* qb, long n_runs,
                               const long* run_at, const long* run_len, const long* run_i,
                               const long* run_j, long n_mono, double certain,
                               double* work, double* out)
{
    double* mono = work;
    double* phi = work + n_mono;
    long used = 0;
    for (long i = start; i < stop; i++) {
        const double* r = R + i * K;
        long top = 0;
        double rmax = r[0];
        for (long k = 1; k < K; k++)
            if (r[k] > rmax) { rmax = r[k]; top = k; }
        double rest = 0.0;
        for (long k = 0; k < K; k++)
            if (k != top) rest += r[k];
        if (rest <= certain)
            continue;
        used++;
        const double* x = X + i * d;
        phi[0] = 1.0;
        for (long a = 0; a < d; a++)
            phi[1 + a] = x[a] - centre[a];
        for (long a = 0; a < n_quad; a++)
            phi[1 + d + a] = phi[1 + qa[a]] * phi[1 + qb[a]];
        for (long q = 0; q < n_runs; q++) {
            const double f = phi[run_i[q]];
            const double* src = phi + run_j[q];
            double* dst = mono + run_at[q];
            const long len = run_len[q];
            for (long t = 0; t < len; t++)
                dst[t] = f * src[t];
        }
        /* (k, k): r_k (1 - r_k), 1 - r_k without cancellation; (k, l): r_k r_l */
        for (long k = 0; k < K; k++) {
            const double rk = r[k];
            if (rk <= certain)
                continue;
            const double w = (k == top) ? rmax * rest : rk * (rest + rmax - rk);
            double* o = out + k * n_mono;
            for (long a = 0; a < n_mono; a++)
                o[a] += w * mono[a];
            const long p0 = K + k * (K - 1) - k * (k - 1) / 2 - k - 1;
            for (long l = k + 1; l < K; l++) {
                const double rl = r[l];
                if (rl <= certain)
                    continue;
                const double wl = rk * rl;
                double* ol = out + (p0 + l) * n_mono;
                for (long a = 0; a < n_mono; a++)
                    ol[a] += wl * mono[a];
            }
        }
    }
    return used;
}

#endif
