"""Interaction graphs: who reads whose synthetic pool, as a K x K weight matrix W.

Entity k's synthetic share alpha is split over the pools j = 0..K-1 with weights W[k, j]:
its loss is

    (1-a) b ||y~_k - X~_k th||^2 + (1-a)(1-b) ||y* - X* th||^2 + a sum_j W[k, j] ||y_j - X_j th||^2,

so W is non-negative with rows summing to 1 (row k: how entity k spends its synthetic share).
The paper's setting is the complete graph W = 1 1' / K (every entity reads every pool, its own
included, equally), the default everywhere.

Named topologies (`graph(name, K)`; `GRAPHS` lists the names), every one with self-loops
(an entity always reads its own pool, as in the paper's complete graph):

* ``complete``: W[k, j] = 1/K.
* ``ring``: the undirected ring, W[k, j] = 1/|N_k| for j in N_k = {k-1, k, k+1} (mod K),
  so 1/3 each for K >= 3 (K = 2: the complete graph; K = 1: [[1]]). Symmetric and doubly
  stochastic.
* ``directed-ring``: W[k, k] = W[k, k+1 mod K] = 1/2: entity k reads itself and its
  successor only (K = 1: [[1]]). Directed: k reads k+1, but k+1 does not read k (K >= 3).
* ``star``: entity 0 is the hub and reads every pool (1/K each, like the complete graph);
  each leaf k >= 1 reads itself and the hub, 1/2 each. The leaves do not read each other.
  Not symmetric as a weight matrix (W[0, k] = 1/K, W[k, 0] = 1/2).
* ``isolated``: W = I, every entity reads only its own pool (K independent single-model
  loops that share only the public data).

numpy only: the language-model loop (workflow) imports this module too.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from crossgen.errors import InputError

GRAPHS = ("complete", "ring", "directed-ring", "star", "isolated")
"""The named topologies of `graph`."""

ROW_SUM_TOL = 1e-9
"""|row sum - 1| above which a user matrix is refused (a row is not a split of alpha)."""

GraphSpec = Union[None, str, np.ndarray, Any]


def graph(name: str, K: int) -> np.ndarray:
    """The K x K interaction matrix W of a named topology (see the module docstring).

    Parameters
    ----------
    name : str
        One of `GRAPHS`: complete, ring, directed-ring, star, isolated.
    K : int
        Number of entities (>= 1).

    Returns
    -------
    array (K, K)
        Non-negative, rows summing to 1 (a fresh, writable array).

    Raises
    ------
    InputError
        An unknown name (field ``graph``) or a K < 1 (field ``K``).
    """
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise InputError("K", K, "an integer >= 1")
    K = int(K)
    if name == "complete":
        return np.full((K, K), 1.0 / K)
    if name == "isolated":
        return np.eye(K)
    if name == "ring":
        W = np.zeros((K, K))
        for k in range(K):
            nbrs = sorted({(k - 1) % K, k, (k + 1) % K})
            W[k, nbrs] = 1.0 / len(nbrs)
        return W
    if name == "directed-ring":
        W = np.zeros((K, K))
        for k in range(K):
            W[k, k] += 0.5
            W[k, (k + 1) % K] += 0.5
        return W
    if name == "star":
        W = np.zeros((K, K))
        W[0] = 1.0 / K
        for k in range(1, K):
            W[k, 0] = W[k, k] = 0.5
        return W
    raise InputError("graph", name, "one of " + ", ".join(GRAPHS) + " (or a K x K matrix)")


def check_graph(W: Any, K: int, field: str = "graph") -> np.ndarray:
    """Validate a user interaction matrix: a finite, non-negative K x K array whose rows sum
    to 1 (within `ROW_SUM_TOL`). Returns a read-only float copy.

    Raises
    ------
    InputError
        One line naming the field (``graph``, or an entry such as ``graph[1,2]`` or a row
        ``graph[2]``), the value and what is allowed.
    """
    try:
        arr = np.array(W, dtype=float, copy=True)
    except (TypeError, ValueError):
        raise InputError(field, W, f"a {K} x {K} matrix of numbers") from None
    if arr.shape != (K, K):
        raise InputError(field, f"shape {arr.shape}", f"a {K} x {K} matrix (K = {K} entities)")
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise InputError(f"{field}[{i},{j}]", float(arr[i, j]), "a finite number >= 0")
    neg = arr < 0
    if neg.any():
        i, j = (int(v) for v in np.argwhere(neg)[0])
        raise InputError(f"{field}[{i},{j}]", float(arr[i, j]), "a number >= 0 (a share of alpha)")
    sums = arr.sum(axis=1)
    off = np.abs(sums - 1.0) > ROW_SUM_TOL
    if off.any():
        i = int(np.argmax(off))
        raise InputError(f"{field}[{i}]", f"row sum {sums[i]:.12g}", "non-negative weights summing to 1 in every row")
    arr.setflags(write=False)
    return arr


def interaction(spec: GraphSpec, K: int, field: str = "graph") -> Optional[np.ndarray]:
    """Resolve a graph argument: None or 'complete' (or a matrix equal to 1 1'/K entry by
    entry) -> None, the complete graph that the structured engine handles; a name -> its
    matrix; a matrix -> validated (`check_graph`). Anything else is an InputError."""
    if spec is None:
        return None
    if isinstance(spec, str):
        W = graph(spec, K)
        if spec == "complete":
            return None
    else:
        W = check_graph(spec, K, field)
    if is_complete(W):
        return None
    out = np.array(W, dtype=float)
    out.setflags(write=False)
    return out


def is_complete(W: np.ndarray) -> bool:
    """True when every entry of W is exactly 1/K (the paper's graph)."""
    K = W.shape[0]
    return bool(np.all(W == 1.0 / K))


def load_graph_file(path: Any, K: int, field: str = "--graph-file") -> np.ndarray:
    """Read a K x K interaction matrix from a .npy file (allow_pickle=False) or a text file
    (.csv comma-separated, .txt/.tsv whitespace- or comma-separated, '#' comments), validated.

    Raises
    ------
    InputError
        A missing or unreadable file, or a matrix that `check_graph` refuses (named by
        ``field``).
    """
    from pathlib import Path

    p = Path(path)
    allowed = f"an existing .npy, .csv or .txt file holding a {K} x {K} matrix"
    if not p.is_file():
        raise InputError(field, str(path), allowed)
    try:
        if p.suffix.lower() == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            text = p.read_text()
            delimiter = "," if "," in text else None
            arr = np.loadtxt(p, delimiter=delimiter, ndmin=2, comments="#")
    except Exception:  # not a .npy, ragged rows, non-numeric cells ...
        raise InputError(field, str(path), allowed) from None
    return check_graph(arr, K, field)


def describe(W: Optional[np.ndarray]) -> str:
    """A short name of an interaction matrix for messages and tables."""
    if W is None:
        return "complete"
    K = W.shape[0]
    for name in GRAPHS:
        if np.array_equal(W, graph(name, K)):
            return name
    return "custom"
