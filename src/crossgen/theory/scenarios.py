"""Feature designs for the theory: the paper's Figure 2 and Figure 4 setups, and their family.

The paper gives only "K = 4, dimension 15, rank 5" (Figure 2) and "K = 2, dimension 50,
rank 15" (Figure 4). What "rank r" means here (our reading, stated in the README):
  * entity k's private features lie in its own random r-dimensional subspace:
    X~_k = Z_k B_k', Z_k (n_k x r) iid N(0, 1), B_k a random orthonormal d x r basis (QR of a
    Gaussian matrix), so S~_k has rank r and the private data of different entities cover
    different directions;
  * the public features are full rank: X* (n* x d) iid N(0, 1) (public_rank=r gives the
    rank-r variant, X* = Z* B*');
  * sample sizes n_k = n* = 4d by default (60 rows for d = 15, 200 for d = 50);
  * synthetic features = private features (the paper's prompts come from D~k), sigma2 = 1,
    theta = ones(d)/sqrt(d) (FeatureSystem's default).
Why these choices: with a full-rank public set of the same size as each private set, the
asymptotic relative efficiency over alpha (Theorem 3) reproduces Figure 2 qualitatively:
beta = 0.5 peaks at alpha ~ 0.45 (efficiency at alpha = beta = 0.5 within 0.5% of that peak),
beta = 0.9 peaks at small alpha (~ 0.2) about as high (within 2%), beta = 0.1 is flat and
lower (seeds 0-5). Off the paper's three curves the group optimum on a fine grid is near
alpha = 0.4, beta = 0.7 (mean efficiency ~0.70 vs ~0.66 at alpha = beta = 0.5). A rank-r
public set (with K r + r >= d so that the pooled data are full rank) peaks near alpha = 0.35
for beta = 0.5, flattens the beta = 0.1 curve to the others' level, and with small samples
(n = 20) its poorly conditioned pooled data make the pooled OLS so noisy that biased limits
score efficiency > 1 (correction 7), unlike the paper's figure.
Everything is seeded: the same arguments give the same arrays.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from crossgen.errors import InputError, check_int
from crossgen.theory.system import FeatureSystem


def _basis(rng: np.random.Generator, d: int, r: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((d, r)))
    return q


def low_rank_system(
    K: int,
    d: int,
    rank: int,
    n_private: Optional[int] = None,
    n_public: Optional[int] = None,
    seed: int = 0,
    public_rank: Optional[int] = None,
    sigma2: float = 1.0,
    theta: Optional[np.ndarray] = None,
) -> FeatureSystem:
    """K entities with rank-`rank` private features in random subspaces of R^d (see module).

    Parameters
    ----------
    K, d, rank : int
        Entities, dimension, and the rank (1 <= rank <= d) of each private feature matrix.
    n_private, n_public : int, optional
        Rows of each private set and of the public set (default 4d each).
    seed : int, default 0
        Seed of everything random: the same arguments give the same arrays.
    public_rank : int, optional
        None (full rank d) or the rank of the public features.
    sigma2, theta
        Passed to `FeatureSystem` (defaults 1 and ones(d)/sqrt(d)).

    Returns
    -------
    FeatureSystem
        Synthetic features = private features.

    Raises
    ------
    InputError
        A non-integer or out-of-range K, d, rank, n_private, n_public or public_rank.
    """
    K = check_int("K", K, 1)
    d = check_int("d", d, 1)
    rank = check_int("rank", rank, 1)
    if rank > d:
        raise InputError("rank", rank, f"an integer in [1, d={d}]")
    n_private = 4 * d if n_private is None else check_int("n_private", n_private, 1)
    n_public = 4 * d if n_public is None else check_int("n_public", n_public, 1)
    if public_rank is not None:
        public_rank = check_int("public_rank", public_rank, 1)
        if public_rank > d:
            raise InputError("public_rank", public_rank, f"an integer in [1, d={d}]")
    rng = np.random.default_rng(seed)
    private = [rng.standard_normal((n_private, rank)) @ _basis(rng, d, rank).T for _ in range(K)]
    if public_rank is None or public_rank == d:
        public = rng.standard_normal((n_public, d))
    else:
        public = rng.standard_normal((n_public, public_rank)) @ _basis(rng, d, public_rank).T
    return FeatureSystem(private=private, public=public, sigma2=sigma2, theta=theta)


def figure2_system(seed: int = 0) -> FeatureSystem:
    """Figure 2 of the paper: K = 4, d = 15, private rank 5, n_k = n* = 60."""
    return low_rank_system(K=4, d=15, rank=5, seed=seed)


def figure4_system(seed: int = 0) -> FeatureSystem:
    """Figure 4 of the paper: K = 2, d = 50, private rank 15, n_k = n* = 200."""
    return low_rank_system(K=2, d=50, rank=15, seed=seed)


def graphs_system(seed: int = 0) -> FeatureSystem:
    """The interaction-graph figure's design (not in the paper): K = 8, d = 10, private rank 3,
    n_k = 20 private rows per entity and a small public set (n* = 10 = d), so that an entity
    learns the directions outside its own private subspace mostly from the others' synthetic
    data, and the graph decides how much of it reaches it."""
    return low_rank_system(K=8, d=10, rank=3, n_private=20, n_public=10, seed=seed)
