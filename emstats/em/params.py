"""Parameter specifications: one description of a model's parameters, many maps.

A model's parameters are a mapping of block names to numpy arrays on their
*natural* scale (probabilities, rates, covariance matrices...).  A
:class:`ParamSpec` is an ordered list of named blocks, each of a kind that knows
three coordinate systems:

natural
    The arrays themselves (``params[name]``), including entries fixed by the
    structure (structural zeros, reference categories, fixed values).
packed
    A flat *unconstrained* vector (:meth:`ParamSpec.pack`): every real vector
    unpacks to valid parameters.  SQUAREM extrapolates here.
inference
    The flat vector in which standard errors are reported
    (:meth:`ParamSpec.to_inference`), with readable labels (:meth:`ParamSpec.names`)
    and the analytic Jacobian d natural / d inference (:meth:`ParamSpec.jacobian`)
    for the delta method.

Both flat vectors have one coordinate per free parameter (``size``).

Block kinds
-----------
:class:`Free`
    Any real array; packed and inference coordinates are the entries themselves.
:class:`Positive`
    Positive entries: packed on the log scale; inference on the natural or the
    log scale (``inference="natural"`` or ``"log"``).
:class:`Simplex`
    Probability vectors along the last axis (rows of a transition matrix):
    packed as multinomial logits against a reference category (the first or
    last free entry of each row); inference on the free probabilities except the
    reference.  Entries outside ``allowed`` are structural zeros.
:class:`Cholesky`
    Symmetric positive-definite matrices (the last two axes) through their
    log-Cholesky factor (lower triangle, log diagonal) for packing; inference on
    the lower-triangle elements of the matrix (``"elements"``) or on the
    log-Cholesky coordinates (``"log-cholesky"``).

:class:`Free` and :class:`Positive` take a ``fixed`` mask: masked entries are not
coordinates and keep the values ``value`` (default 0).

Examples
--------
>>> import numpy as np
>>> from emstats.em.params import Cholesky, Free, ParamSpec, Simplex
>>> spec = ParamSpec([Simplex("weights", (2,), reference="first"),
...                   Free("mean", (2, 1), axes=(None, ["x"])),
...                   Cholesky("cov", 1, (2,), axes=(None, ["x"]))])
>>> p = {"weights": np.array([0.25, 0.75]), "mean": np.array([[0.0], [3.0]]),
...      "cov": np.array([[[1.0]], [[4.0]]])}
>>> spec.names()
['weights[2]', 'mean[1](x)', 'mean[2](x)', 'var[1](x)', 'var[2](x)']
>>> np.round(spec.pack(p), 4).tolist()
[1.0986, 0.0, 3.0, 0.0, 0.6931]
>>> spec.to_inference(p).tolist()
[0.75, 0.0, 3.0, 1.0, 4.0]
>>> bool(np.allclose(spec.unpack(spec.pack(p))["cov"], p["cov"]))
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["Block", "Cholesky", "Free", "ParamSpec", "Positive", "Simplex", "SpecMaps"]

#: probabilities are floored here before taking logs (log(1e-300) = -690.8)
TINY = 1e-300

Label = Callable[[tuple], str]


class _LabelTable:
    """A ``label`` function given by its values: index -> label."""

    def __init__(self, table: dict):
        self.table = table

    def __call__(self, idx) -> str:
        return self.table[tuple(int(i) for i in idx)]


def _default_label(name: str, idx: tuple, axes) -> str:
    """``name[i,j](lab)``: unlabelled axes as 1-based indices in brackets, labelled
    axes (a sequence of labels) in parentheses."""
    nums, labs = [], []
    for ax, i in enumerate(idx):
        lab = axes[ax] if axes is not None and ax < len(axes) else None
        if lab is None:
            nums.append(str(i + 1))
        else:
            labs.append(str(lab[i]))
    out = name
    if nums:
        out += "[" + ",".join(nums) + "]"
    if labs:
        out += "(" + ",".join(labs) + ")"
    return out


class Block:
    """One named block of parameters (base class).

    Parameters
    ----------
    name : str
        Key of the block in the parameter mapping, and the stem of its labels.
    shape : tuple of int
        Shape of the natural array.
    axes : sequence, optional
        Per axis of ``shape``: None (labelled by 1-based index, in brackets) or a
        sequence of labels (in parentheses).
    label : callable, optional
        ``label(index) -> str`` for a coordinate at ``index`` of the natural array;
        overrides the default labels.
    """

    kind = "?"

    def __init__(self, name: str, shape, *, axes=None, label: Label | None = None):
        self.name = str(name)
        self.shape = tuple(int(s) for s in np.atleast_1d(shape)) if np.ndim(shape) else \
            (int(shape),)
        self.axes = axes
        self.label = label

    # -- sizes ----------------------------------------------------------------------------
    @property
    def natural_size(self) -> int:
        """Number of entries of the natural array."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def size(self) -> int:  # pragma: no cover - abstract
        """Number of coordinates (packed and inference)."""
        raise NotImplementedError

    # -- maps -----------------------------------------------------------------------------
    def pack(self, x) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def unpack(self, u) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_inference(self, x) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def from_inference(self, theta) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def jacobian(self, theta) -> np.ndarray:  # pragma: no cover - abstract
        """d natural.ravel() / d theta, shape (natural_size, size)."""
        raise NotImplementedError

    def coords(self) -> list[tuple]:  # pragma: no cover - abstract
        """Index (into the natural array) of each inference coordinate, in order."""
        raise NotImplementedError

    def __getstate__(self):
        # a label function (often a closure over the model) travels as its values, so
        # that a spec, and the model holding it, pickles and deep-copies
        state = dict(self.__dict__)
        if state.get("label") is not None and not isinstance(state["label"], _LabelTable):
            state["label"] = _LabelTable({tuple(int(i) for i in idx): self.label(idx)
                                          for idx in self.coords()})
        return state

    def names(self) -> list[str]:
        """Labels of the inference coordinates."""
        lab = self.label
        if lab is not None:
            return [lab(idx) for idx in self.coords()]
        return [_default_label(self.name, idx, self.axes) for idx in self.coords()]

    def _check(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if x.shape != self.shape:
            raise ValueError(f"parameter block {self.name!r} must have shape {self.shape}, "
                             f"got {x.shape}")
        return x

    def _check_vec(self, u) -> np.ndarray:
        u = np.asarray(u, dtype=float).ravel()
        if u.size != self.size:
            raise ValueError(f"parameter block {self.name!r} has {self.size} coordinates, "
                             f"got {u.size}")
        return u

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, shape={self.shape}, size={self.size})"


class _Masked(Block):
    """Elementwise blocks with an optional mask of fixed entries."""

    def __init__(self, name, shape, *, fixed=None, value=0.0, axes=None, label=None):
        super().__init__(name, shape, axes=axes, label=label)
        if fixed is None:
            fixed = np.zeros(self.shape, dtype=bool)
        fixed = np.broadcast_to(np.asarray(fixed, dtype=bool), self.shape)
        self.fixed = fixed.copy()
        self.free = ~self.fixed
        self.value = np.broadcast_to(np.asarray(value, dtype=float), self.shape).copy()
        self._flat = np.flatnonzero(self.free.ravel())

    @property
    def size(self) -> int:
        return int(self._flat.size)

    def coords(self):
        return [tuple(int(i) for i in ix) for ix in zip(*np.nonzero(self.free), strict=True)] \
            if self.shape else [()] * self.size

    def _fill(self, vals) -> np.ndarray:
        out = self.value.copy()
        out.reshape(-1)[self._flat] = vals
        return out

    def _take(self, x) -> np.ndarray:
        return self._check(x).reshape(-1)[self._flat].copy()


class Free(_Masked):
    """Real-valued entries of any shape; masked entries (``fixed``) keep ``value``."""

    kind = "free"

    def pack(self, x):
        return self._take(x)

    def unpack(self, u):
        return self._fill(self._check_vec(u))

    to_inference = pack
    from_inference = unpack

    def jacobian(self, theta):
        J = np.zeros((self.natural_size, self.size))
        J[self._flat, np.arange(self.size)] = 1.0
        return J


class Positive(_Masked):
    """Positive entries: packed as logs; inference on the natural (default) or log scale.

    Parameters
    ----------
    inference : {"natural", "log"}
        Scale of the inference coordinates.
    """

    kind = "positive"

    def __init__(self, name, shape, *, inference: str = "natural", fixed=None, value=1.0,
                 axes=None, label=None):
        if inference not in ("natural", "log"):
            raise ValueError(f"inference must be 'natural' or 'log', got {inference!r}")
        super().__init__(name, shape, fixed=fixed, value=value, axes=axes, label=label)
        self.inference = inference

    def pack(self, x):
        return np.log(self._take(x))

    def unpack(self, u):
        return self._fill(np.exp(self._check_vec(u)))

    def to_inference(self, x):
        v = self._take(x)
        return np.log(v) if self.inference == "log" else v

    def from_inference(self, theta):
        th = self._check_vec(theta)
        return self._fill(np.exp(th) if self.inference == "log" else th)

    def jacobian(self, theta):
        th = self._check_vec(theta)
        J = np.zeros((self.natural_size, self.size))
        J[self._flat, np.arange(self.size)] = np.exp(th) if self.inference == "log" else 1.0
        return J


class Simplex(Block):
    """Probability vectors along the last axis (e.g. the rows of a transition matrix).

    Packed coordinates: log(p_j / p_ref) for each free entry j other than the
    reference of its row; inference coordinates: those p_j (the reference is one
    minus their sum).  Entries outside ``allowed`` are structural zeros: zero in
    every parameter value, and not coordinates.  A row with one free entry has no
    coordinates (that entry is 1).

    Parameters
    ----------
    name, shape :
        As :class:`Block`; the last axis holds the categories.
    allowed : array_like of bool, optional
        Free entries (default all); each row needs at least one.
    reference : {"last", "first"}
        The reference category of each row: its last or its first free entry.
    """

    kind = "simplex"

    def __init__(self, name, shape, *, allowed=None, reference: str = "last", axes=None,
                 label=None):
        super().__init__(name, shape, axes=axes, label=label)
        if reference not in ("last", "first"):
            raise ValueError(f"reference must be 'last' or 'first', got {reference!r}")
        self.reference = reference
        M = self.shape[-1]
        R = self.natural_size // M
        al = np.ones(self.shape, dtype=bool) if allowed is None else \
            np.broadcast_to(np.asarray(allowed, dtype=bool), self.shape)
        self.allowed = al.copy()
        rows = self.allowed.reshape(R, M)
        if not rows.any(axis=1).all():
            bad = np.flatnonzero(~rows.any(axis=1))
            raise ValueError(f"simplex block {self.name!r}: row(s) {bad.tolist()} have no "
                             "free entry")
        self._R, self._M = R, M
        #: free entries of each (flattened) row
        self.free = [np.flatnonzero(r) for r in rows]
        #: (row, entry, reference) of each coordinate, rows flattened over leading axes
        self.index = []
        for i, f in enumerate(self.free):
            ref = f[-1] if reference == "last" else f[0]
            others = f[:-1] if reference == "last" else f[1:]
            self.index += [(i, int(j), int(ref)) for j in others]
        self._rows = np.array([i for i, _, _ in self.index], dtype=np.intp)
        self._cols = np.array([j for _, j, _ in self.index], dtype=np.intp)
        self._refs = np.array([r for _, _, r in self.index], dtype=np.intp)

    @property
    def size(self) -> int:
        return len(self.index)

    def coords(self):
        lead = self.shape[:-1]
        out = []
        for i, j, _ in self.index:
            out.append(tuple(int(a) for a in np.unravel_index(i, lead)) + (j,) if lead
                       else (j,))
        return out

    def pack(self, x):
        P = self._check(x).reshape(self._R, self._M)
        L = np.log(np.maximum(P, TINY))
        return L[self._rows, self._cols] - L[self._rows, self._refs]

    def unpack(self, u):
        u = self._check_vec(u)
        P = np.zeros((self._R, self._M))
        pos = 0
        first = self.reference == "first"
        for i, f in enumerate(self.free):
            m = len(f) - 1
            z = np.asarray(u[pos:pos + m], dtype=float)
            z = np.concatenate([[0.0], z]) if first else np.append(z, 0.0)
            pos += m
            z = np.exp(z - z.max())
            P[i, f] = z / z.sum()
        return P.reshape(self.shape)

    def to_inference(self, x):
        P = self._check(x).reshape(self._R, self._M)
        return P[self._rows, self._cols].copy()

    def from_inference(self, theta):
        th = self._check_vec(theta)
        P = np.zeros((self._R, self._M))
        P[self._rows, self._cols] = th
        first = self.reference == "first"
        for i, f in enumerate(self.free):
            ref, others = (f[0], f[1:]) if first else (f[-1], f[:-1])
            P[i, ref] = 1.0 - P[i, others].sum()
        return P.reshape(self.shape)

    def jacobian(self, theta=None):
        """Constant: d p_j / d theta_j = 1 and d p_ref / d theta_j = -1."""
        J = np.zeros((self._R, self._M, self.size))
        p = np.arange(self.size)
        J[self._rows, self._cols, p] = 1.0
        J[self._rows, self._refs, p] = -1.0
        return J.reshape(self.natural_size, self.size)


class Cholesky(Block):
    """Symmetric positive-definite d x d matrices (a stack of them) via log-Cholesky.

    Packed coordinates: the lower triangle of the Cholesky factor L (row by row,
    ``numpy.tril_indices`` order) with the diagonal on the log scale, so that any
    real vector gives L L' positive definite.  Inference coordinates: the lower
    triangle of the matrix itself (``"elements"``, default) or the packed ones
    (``"log-cholesky"``).

    Parameters
    ----------
    name : str
    d : int
        Dimension of each matrix.
    lead : tuple of int
        Leading shape of the stack (``()`` for one matrix, ``(K,)`` for K).
    inference : {"elements", "log-cholesky"}
    axes : sequence, optional
        Labels of the leading axes (None for 1-based indices) followed by one
        sequence of variable names for the matrix rows/columns.
    names : (str, str)
        Stems of the labels of diagonal and off-diagonal elements.
    """

    kind = "cholesky"

    def __init__(self, name, d: int, lead=(), *, inference: str = "elements", axes=None,
                 label=None, names=("var", "cov")):
        lead = tuple(int(s) for s in lead)
        super().__init__(name, lead + (int(d), int(d)), axes=axes, label=label)
        if inference not in ("elements", "log-cholesky"):
            raise ValueError(f"inference must be 'elements' or 'log-cholesky', got "
                             f"{inference!r}")
        self.inference = inference
        self.d = int(d)
        self.lead = lead
        self.n_mat = int(np.prod(lead, dtype=np.int64))
        self.tril = np.tril_indices(self.d)
        self.n_elem = self.tril[0].size
        self._diag = self.tril[0] == self.tril[1]
        self.stems = names

    @property
    def size(self) -> int:
        return self.n_mat * self.n_elem

    def coords(self):
        out = []
        for m in range(self.n_mat):
            lead = tuple(int(a) for a in np.unravel_index(m, self.lead)) if self.lead else ()
            out += [lead + (int(a), int(b)) for a, b in zip(*self.tril, strict=True)]
        return out

    def names(self):
        if self.label is not None:
            return super().names()
        axes = self.axes
        nl = len(self.lead)
        lead_axes = tuple(axes[:nl]) if axes is not None else (None,) * nl
        var = axes[nl] if axes is not None and len(axes) > nl else None
        if var is None:
            var = [str(j + 1) for j in range(self.d)]
        out = []
        for idx in self.coords():
            a, b = idx[-2:]
            head = _default_label(self.stems[0] if a == b else self.stems[1], idx[:-2],
                                  lead_axes)
            out.append(head + (f"({var[a]})" if a == b else f"({var[b]},{var[a]})"))
        return out

    # -- log-Cholesky -------------------------------------------------------------------------
    def factor_to_vec(self, L) -> np.ndarray:
        """Log-Cholesky coordinates of lower-triangular factors L (..., d, d)."""
        a, b = self.tril
        out = L.reshape(-1, self.d, self.d)[:, a, b].copy()
        out[:, self._diag] = np.log(out[:, self._diag])
        return out.ravel()

    def vec_to_factor(self, u) -> np.ndarray:
        """Lower-triangular factors (n_mat, d, d) from log-Cholesky coordinates."""
        v = np.asarray(u, dtype=float).reshape(-1, self.n_elem).copy()
        v[:, self._diag] = np.exp(v[:, self._diag])
        a, b = self.tril
        L = np.zeros((v.shape[0], self.d, self.d))
        L[:, a, b] = v
        return L

    def pack(self, x):
        S = self._check(x).reshape(-1, self.d, self.d)
        return self.factor_to_vec(np.linalg.cholesky(S))

    def unpack(self, u):
        L = self.vec_to_factor(self._check_vec(u))
        return (L @ np.swapaxes(L, 1, 2)).reshape(self.shape)

    def to_inference(self, x):
        if self.inference == "log-cholesky":
            return self.pack(x)
        a, b = self.tril
        return self._check(x).reshape(-1, self.d, self.d)[:, a, b].ravel()

    def from_inference(self, theta):
        th = self._check_vec(theta)
        if self.inference == "log-cholesky":
            return self.unpack(th)
        a, b = self.tril
        el = th.reshape(-1, self.n_elem)
        S = np.zeros((el.shape[0], self.d, self.d))
        S[:, a, b] = el
        S[:, b, a] = el
        return S.reshape(self.shape)

    def jacobian(self, theta):
        """Block diagonal over the matrices: for elements, d Sigma / d sigma_ab is the
        symmetric unit matrix E_ab; for log-Cholesky, dSigma = dL L' + L dL' with
        dL = E_ab (times L_aa on the diagonal)."""
        th = self._check_vec(theta)
        d, ne = self.d, self.n_elem
        a, b = self.tril
        J = np.zeros((self.n_mat, d, d, self.n_mat, ne))
        m = np.arange(ne)
        if self.inference == "elements":
            for k in range(self.n_mat):
                J[k, a, b, k, m] = 1.0
                J[k, b, a, k, m] = 1.0
        else:
            L = self.vec_to_factor(th)
            for k in range(self.n_mat):
                dL = np.zeros((ne, d, d))
                dL[m, a, b] = np.where(self._diag, L[k, a, a], 1.0)
                X = dL @ L[k].T
                J[k, :, :, k, :] = np.moveaxis(X + np.swapaxes(X, 1, 2), 0, -1)
        return J.reshape(self.natural_size, self.size)


class ParamSpec:
    """An ordered list of named parameter blocks and the maps between coordinates.

    Parameters
    ----------
    blocks : sequence of Block
        The blocks, in the order of the flat vectors.

    Attributes
    ----------
    size : int
        Number of coordinates (packed and inference).
    natural_size : int
        Number of natural entries (the rows of :meth:`jacobian`).
    slices : dict of str to slice
        Position of each block in the flat vectors.
    natural_slices : dict of str to slice
        Position of each block in the flattened natural parameters.
    """

    def __init__(self, blocks: Sequence[Block]):
        self.blocks = list(blocks)
        names = [b.name for b in self.blocks]
        if len(set(names)) != len(names):
            raise ValueError(f"block names must be distinct, got {names}")
        self.slices, self.natural_slices = {}, {}
        pos = npos = 0
        for b in self.blocks:
            self.slices[b.name] = slice(pos, pos + b.size)
            self.natural_slices[b.name] = slice(npos, npos + b.natural_size)
            pos += b.size
            npos += b.natural_size
        self.size = pos
        self.natural_size = npos

    def __getitem__(self, name: str) -> Block:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)

    def __len__(self) -> int:
        return len(self.blocks)

    def __repr__(self):
        return "ParamSpec([" + ", ".join(map(repr, self.blocks)) + "])"

    def _vec(self, vec) -> np.ndarray:
        vec = np.asarray(vec, dtype=float).ravel()
        if vec.size != self.size:
            raise ValueError(f"expected {self.size} coordinates, got {vec.size}")
        return vec

    def _flat(self, params: Mapping[str, np.ndarray], fn: str) -> np.ndarray:
        missing = [b.name for b in self.blocks if b.name not in params]
        if missing:
            raise KeyError(f"parameters lack block(s) {missing}")
        parts = [getattr(b, fn)(params[b.name]) for b in self.blocks]
        return np.concatenate(parts) if parts else np.zeros(0)

    def pack(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """The flat unconstrained vector of ``params``."""
        return self._flat(params, "pack")

    def unpack(self, vec) -> dict[str, np.ndarray]:
        """Parameters (a dict of natural arrays) from any real vector of ``size``."""
        vec = self._vec(vec)
        return {b.name: b.unpack(vec[self.slices[b.name]]) for b in self.blocks}

    def to_inference(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """The flat vector of inference coordinates of ``params``."""
        return self._flat(params, "to_inference")

    def from_inference(self, theta) -> dict[str, np.ndarray]:
        """Parameters from inference coordinates."""
        theta = self._vec(theta)
        return {b.name: b.from_inference(theta[self.slices[b.name]]) for b in self.blocks}

    def names(self) -> list[str]:
        """Labels of the inference coordinates, e.g. ``mean[1](x)``."""
        return [nm for b in self.blocks for nm in b.names()]

    def natural(self, params: Mapping[str, np.ndarray]) -> np.ndarray:
        """All natural entries flattened, block by block (the rows of :meth:`jacobian`)."""
        return np.concatenate([np.asarray(params[b.name], dtype=float).ravel()
                               for b in self.blocks])

    def jacobian(self, theta) -> np.ndarray:
        """d natural / d inference at ``theta``: shape (natural_size, size), block diagonal."""
        theta = self._vec(theta)
        J = np.zeros((self.natural_size, self.size))
        for b in self.blocks:
            J[self.natural_slices[b.name], self.slices[b.name]] = \
                b.jacobian(theta[self.slices[b.name]])
        return J


class SpecMaps:
    """A model's parameter maps, written by its ``spec`` (a :class:`ParamSpec`).

    Mix in before the protocol class (``class M(SpecMaps, FitMixin, ChunkedModel)``) and
    set ``self.spec``; ``pack``, ``unpack``, ``to_inference``, ``from_inference`` and
    ``param_names`` then come from the spec.
    """

    spec: ParamSpec

    @property
    def param_names(self) -> list[str]:
        return self.spec.names()

    def pack(self, params) -> np.ndarray:
        return self.spec.pack(params)

    def unpack(self, vec) -> dict[str, np.ndarray]:
        return self.spec.unpack(vec)

    def to_inference(self, params) -> np.ndarray:
        return self.spec.to_inference(params)

    def from_inference(self, theta) -> dict[str, np.ndarray]:
        return self.spec.from_inference(theta)
