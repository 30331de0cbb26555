"""k-means starts: nearest-centre assignment with the groups' sums, and k-means++ distances.

Both pass once over the rows, in chunks of CHUNK rows (the parallel unit, OpenMP ``prange``),
and read the data through strided memoryviews (a column slice or a transposed view is read in
place, not copied).

- :func:`assign` labels each row with its nearest centre, by the smallest
  |c_k|^2 - 2 x'c_k (the first centre on a tie), and writes each chunk's group counts and sums
  to ``part_counts[c]`` and ``part_sums[c]``; the caller adds them in chunk order, so the
  result is bitwise identical for any number of threads.
- :func:`sqdist_min` writes the squared distance of every row of X / scale to a given point,
  or the smaller of it and the value already there (the D^2 of k-means++ seeding).
"""

from cython.parallel cimport prange

cdef Py_ssize_t CHUNK = 8192


def n_chunks(Py_ssize_t n):
    """Number of chunks ``n`` rows are split into (the first axis of the partial sums)."""
    return (n + CHUNK - 1) // CHUNK


def assign(const double[:, :] X, const double[:, ::1] CT, const double[::1] cc,
           Py_ssize_t[::1] labels, double[:, ::1] part_counts, double[:, :, ::1] part_sums,
           int n_threads):
    """Nearest-centre labels and each chunk's group counts and sums.

    Parameters
    ----------
    X : (n, d) rows.
    CT : (d, K) the centres, transposed (the K products x'c_k of a row are formed together,
        column by column of the row).
    cc : (K,) their squared norms.
    labels : (n,) output labels.
    part_counts : (n_chunks(n), K) zero-initialised counts per chunk.
    part_sums : (n_chunks(n), K, d) zero-initialised sums per chunk.
    n_threads : OpenMP threads.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = CT.shape[1]
    cdef Py_ssize_t nch = (n + CHUNK - 1) // CHUNK
    cdef Py_ssize_t c, i, j, best, start, stop
    cdef Py_ssize_t sx1 = X.strides[1] // sizeof(double)
    if CT.shape[0] != d or cc.shape[0] != K or labels.shape[0] != n:
        raise ValueError("inconsistent shapes")
    if part_counts.shape[0] < nch or part_counts.shape[1] != K or part_sums.shape[0] < nch \
            or part_sums.shape[1] != K or part_sums.shape[2] != d:
        raise ValueError("the partial sums have the wrong shape")
    if X.strides[0] % sizeof(double) or X.strides[1] % sizeof(double):
        raise ValueError("X must have strides that are multiples of 8 bytes")
    if n == 0 or K == 0:
        return
    for c in prange(nch, nogil=True, schedule="static", num_threads=n_threads):
        start = c * CHUNK
        stop = start + CHUNK
        if stop > n:
            stop = n
        for i in range(start, stop):
            best = _nearest(&X[i, 0], sx1, d, K, &CT[0, 0], &cc[0])
            labels[i] = best
            part_counts[c, best] += 1.0
            for j in range(d):
                part_sums[c, best, j] += X[i, j]


cdef Py_ssize_t _nearest(const double* x, Py_ssize_t sx, Py_ssize_t d, Py_ssize_t K,
                         const double* CT, const double* cc) noexcept nogil:
    """The centre with the smallest |c_k|^2 - 2 x'c_k (the first on a tie); the products
    x'c_k of 16 centres at a time in a local array (registers, private to the thread)."""
    cdef double acc[16]
    cdef double xj, v, vbest = 0.0
    cdef Py_ssize_t j, k, k0, kb, best = 0
    for k0 in range(0, K, 16):
        kb = K - k0
        if kb > 16:
            kb = 16
        for k in range(kb):
            acc[k] = 0.0
        for j in range(d):
            xj = x[j * sx]
            for k in range(kb):
                acc[k] = acc[k] + xj * CT[j * K + k0 + k]
        for k in range(kb):
            v = cc[k0 + k] - 2.0 * acc[k]
            if (k0 == 0 and k == 0) or v < vbest:
                vbest = v
                best = k0 + k
    return best


def sqdist_min(const double[:, :] X, const double[::1] point, const double[::1] scale,
               double[::1] d2, int first, int n_threads):
    """Squared distances of the rows of X / scale to ``point`` (given in the scaled
    coordinates) into ``d2``, or (``first == 0``) the smaller of them and ``d2``."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef Py_ssize_t i, j
    cdef double acc, t
    if point.shape[0] != d or scale.shape[0] != d or d2.shape[0] != n:
        raise ValueError("inconsistent shapes")
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        acc = 0.0
        for j in range(d):
            t = X[i, j] / scale[j] - point[j]
            acc = acc + t * t
        if first or acc < d2[i]:
            d2[i] = acc
