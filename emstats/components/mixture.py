"""The pieces every finite mixture shares, whatever its components.

With weights pi_k and component densities f_k, the E-step gives responsibilities
r_ik = pi_k f_k(y_i) / sum_j pi_j f_j(y_i), computed by log-sum-exp.  Louis' pieces
come from the complete-data score of a unit with known component k,

    a_ik = (d log pi_k / d pi_(2..K),  g_ik in the block of component k),

where g_ik is the component's own per-row score: the observed score is
sum_i w_i m_i with m_i = sum_k r_ik a_ik, the missing information
sum_i w_i (sum_k r_ik a_ik a_ik' - m_i m_i') and the complete information is
block diagonal (weights; each component's sum_i w_i r_ik H_ik).  The weights are
reported as the probabilities of components 2..K (component 1 is the reference).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def responsibilities(logdens: np.ndarray, log_weights: np.ndarray):
    """``(r, loglik_rows)`` from per-row component log-densities (n, K) and log weights."""
    joint = logdens + log_weights[None, :]
    ll = logsumexp(joint, axis=1)
    with np.errstate(invalid="ignore"):
        r = np.exp(joint - ll[:, None])
    return r, ll


def _complete_scores(weights: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Complete-data score of each row under each component (n, K, P), in the order of
    :func:`louis_pieces`."""
    n, K, q = g.shape
    A = np.zeros((n, K, K - 1 + K * q))
    if K > 1:
        A[:, 0, : K - 1] = -1.0 / weights[0]
        for k in range(1, K):
            A[:, k, k - 1] = 1.0 / weights[k]
    for k in range(K):
        A[:, k, K - 1 + k * q: K - 1 + (k + 1) * q] = g[:, k, :]
    return A


def score_rows(r: np.ndarray, w: np.ndarray, weights: np.ndarray,
               g: np.ndarray) -> np.ndarray:
    """Observed-data score of each row (n, P), frequency weights included: by Fisher's
    identity w_i sum_k r_ik a_ik with a_ik the row's complete-data score in component k
    (arguments as for :func:`louis_pieces`)."""
    return w[:, None] * np.einsum("nk,nkp->np", r, _complete_scores(weights, g))


def louis_pieces(r: np.ndarray, w: np.ndarray, weights: np.ndarray, g: np.ndarray,
                 h: np.ndarray):
    """Score, complete and missing information of a mixture (see the module docstring).

    Parameters
    ----------
    r : (n, K) responsibilities; w : (n,) frequency weights; weights : (K,) pi;
    g : (n, K, q) component scores of the component's own q parameters;
    h : (n, K, q, q) component information (minus the Hessian) per row.

    Returns
    -------
    score : (P,), complete : (P, P), missing : (P, P), with P = K - 1 + K q in the
    order (pi_2..pi_K, component 1's q parameters, ..., component K's).
    """
    _, K, q = g.shape
    P = K - 1 + K * q
    A = _complete_scores(weights, g)
    wr = w[:, None] * r
    m = np.einsum("nk,nkp->np", r, A)
    score = w @ m
    missing = np.einsum("nk,nkp,nkq->pq", wr, A, A) - np.einsum("n,np,nq->pq", w, m, m)
    complete = np.zeros((P, P))
    N = wr.sum(axis=0)
    if K > 1:
        complete[: K - 1, : K - 1] = np.diag(N[1:] / weights[1:] ** 2) + N[0] / weights[0] ** 2
    for k in range(K):
        s = slice(K - 1 + k * q, K - 1 + (k + 1) * q)
        complete[s, s] = np.einsum("n,nab->ab", wr[:, k], h[:, k])
    return score, complete, missing
