"""A trained random forest as plain arrays, for scoring without scikit-learn or skops.

Training logs each supervised detector twice in one MLflow model: the scikit-learn flavour (skops), what MLflow
serves and training compares champions with; and beside it (``extra_files/forest.npz``) the forest's trees as
numeric arrays, which a scoring process loads with ``numpy.load(allow_pickle=False)``: no code or object is built
from the file, and it needs neither skops (whose import lists every public type of scikit-learn, numpy and
scipy: about 4 s of each scoring process's start) nor scikit-learn. ``Forest.predict_proba`` walks the trees as
scikit-learn's ``Tree.apply`` does (float32 features, NaN to the side each node learnt) and adds the leaves' class
fractions tree by tree, as ``probabilities`` does: the same numbers, bit for bit.
"""

from __future__ import annotations

import io

import numpy as np

FILE = "forest.npz"
# Where mlflow.sklearn.log_model(extra_files=...) puts the file in the model's directory.
ARTIFACT = f"extra_files/{FILE}"
FORMAT = 1
ROWS = 1024  # rows walked down the trees at once (see Forest.predict_proba)


def exportable(model) -> bool:
    """Whether ``model`` is a forest these arrays reproduce: a fitted single-output RandomForestClassifier."""
    from sklearn.ensemble import RandomForestClassifier

    return type(model) is RandomForestClassifier and model.n_outputs_ == 1 and hasattr(model, "estimators_")


def probabilities(model, X) -> np.ndarray:
    """``model.predict_proba(X)``, the same numbers; for a random forest without joblib's dispatch of each tree.

    A scheduled run predicts a few hundred rows per type with 100 trees: sklearn's Parallel wraps every tree's
    call in a copy of the configuration and warning filters, 85 % of predict_proba there (training's out-of-fold
    predictions pay it too). This is its sequential path (n_jobs 1, as the detectors are stored): each tree's
    class fractions added in the forest's order, then divided by the number of trees (``tests/mlops/test_forest.py``
    and ``test_scoring_fleet.py`` check it bit for bit). A ``Forest`` (the arrays) gives the same numbers.
    """
    if isinstance(model, Forest):
        return model.predict_proba(X)
    from sklearn.ensemble import RandomForestClassifier

    if type(model) is not RandomForestClassifier or model.n_outputs_ != 1:
        return model.predict_proba(X)
    X = model._validate_X_predict(X)  # the forest's own check: features by name, float32
    total = np.zeros((X.shape[0], model.n_classes_), dtype=np.float64)
    for tree in model.estimators_:
        total += tree.tree_.predict(X)[:, : tree.n_classes_]
    total /= len(model.estimators_)
    return total


def forest_bytes(model) -> bytes:
    """The arrays of a fitted RandomForestClassifier (see ``exportable``), as an .npz file's bytes."""
    roots, left, right, feature, threshold, missing_left, value = [], [], [], [], [], [], []
    offset = 0
    for tree in model.estimators_:
        t = tree.tree_
        inner = t.children_left >= 0
        roots.append(offset)
        left.append(np.where(inner, t.children_left + offset, -1))
        right.append(np.where(inner, t.children_right + offset, -1))
        feature.append(np.where(inner, t.feature, 0))
        threshold.append(t.threshold)
        missing_left.append(t.missing_go_to_left.astype(bool))
        value.append(t.value[:, 0, : tree.n_classes_])
        offset += t.node_count
    names = getattr(model, "feature_names_in_", None)
    arrays = {
        "format": np.array(FORMAT),
        "roots": np.array(roots, dtype=np.int64),
        "left": np.concatenate(left).astype(np.int64),
        "right": np.concatenate(right).astype(np.int64),
        "feature": np.concatenate(feature).astype(np.int64),
        "threshold": np.concatenate(threshold).astype(np.float64),
        "missing_left": np.concatenate(missing_left),
        "value": np.concatenate(value).astype(np.float64),
        "classes": np.asarray(model.classes_),
        "n_features": np.array(model.n_features_in_),
        "feature_names": np.array([] if names is None else [str(name) for name in names], dtype=str),
        "allow_nan": np.array(bool(model.estimators_[0].__sklearn_tags__().input_tags.allow_nan)),
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


class Forest:
    """A random forest's trees as arrays (see ``forest_bytes``), predicting as the forest did."""

    def __init__(self, data: bytes):
        # allow_pickle=False: a file of numbers only; an object array in it is refused, not unpickled.
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            if int(arrays["format"]) != FORMAT:
                raise ValueError(f"Unknown forest format {int(arrays['format'])}.")
            self.roots = arrays["roots"].astype(np.intp)
            self.left = arrays["left"].astype(np.intp)
            self.right = arrays["right"].astype(np.intp)
            self.feature = arrays["feature"].astype(np.intp)
            self.threshold = arrays["threshold"].astype(np.float64)
            self.missing_left = arrays["missing_left"].astype(bool)
            self.value = arrays["value"].astype(np.float64)
            self.classes_ = arrays["classes"]
            self.n_features_in_ = int(arrays["n_features"])
            self.feature_names_in_ = [str(name) for name in arrays["feature_names"]] or None
            self.allow_nan = bool(arrays["allow_nan"])
        self._check()

    def _check(self) -> None:
        """Refuse arrays that would index out of bounds or loop: every child comes after its parent."""
        n = len(self.left)
        nodes = np.arange(n)
        inner = self.left >= 0
        ok = (
            len(self.roots) > 0
            and all(len(a) == n for a in (self.right, self.feature, self.threshold, self.missing_left, self.value))
            and self.value.ndim == 2
            and self.value.shape[1] == len(self.classes_)
            and bool(np.all((self.roots >= 0) & (self.roots < n)))
            and bool(np.all((self.right >= 0) == inner))
            and bool(np.all((self.left[inner] > nodes[inner]) & (self.left[inner] < n)))
            and bool(np.all((self.right[inner] > nodes[inner]) & (self.right[inner] < n)))
            and bool(np.all((self.feature[inner] >= 0) & (self.feature[inner] < self.n_features_in_)))
        )
        if not ok:
            raise ValueError("The forest's arrays are inconsistent; retrain the model.")

    def _validated(self, X) -> np.ndarray:
        """X as float32, checked as the forest's own predict checks it (feature names, count, finite values)."""
        columns = getattr(X, "columns", None)
        if columns is not None and self.feature_names_in_ is not None and list(columns) != self.feature_names_in_:
            raise ValueError("The feature names should match those that were passed during fit.")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[-1]} features, but the forest is expecting {self.n_features_in_}.")
        if not len(X):
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        if np.isinf(X).any() or (not self.allow_nan and np.isnan(X).any()):
            raise ValueError("Input X contains infinity or a value too large for dtype('float32').")
        return X

    def apply(self, X) -> np.ndarray:
        """The leaf (node number in these arrays) each row ends in, per tree: shape (rows, trees)."""
        X = self._validated(X)
        rows, trees = X.shape[0], len(self.roots)
        leaves = np.tile(self.roots, rows)  # row-major: row i's trees at i * trees ...
        # The (row, tree) pairs still on their way down: where they are in ``leaves``, their node, their row's
        # first value in X (flat); those that reach a leaf leave the arrays.
        where = np.arange(rows * trees)
        node = leaves.copy()
        base = np.repeat(np.arange(rows) * X.shape[1], trees)
        values = np.ascontiguousarray(X).ravel()
        going = self.left[node] >= 0
        where, node, base = where[going], node[going], base[going]
        while where.size:
            x = values[base + self.feature[node]]
            # float32 against the float64 threshold, as scikit-learn's Tree.apply compares them.
            go_left = x <= self.threshold[node]
            missing = np.isnan(x)
            if missing.any():
                go_left = np.where(missing, self.missing_left[node], go_left)
            node = np.where(go_left, self.left[node], self.right[node])
            leaf = self.left[node] < 0
            if leaf.any():
                leaves[where[leaf]] = node[leaf]
                going = ~leaf
                where, node, base = where[going], node[going], base[going]
        return leaves.reshape(rows, trees)

    def predict_proba(self, X) -> np.ndarray:
        """Each class's probability: the leaves' class fractions added tree by tree, over the number of trees."""
        X = self._validated(X)
        # By blocks of rows: a backlog's tens of thousands of rows times 100 trees would walk arrays larger than
        # the CPU's caches (a quarter faster so).
        leaves = np.concatenate([self.apply(X[start : start + ROWS]) for start in range(0, len(X), ROWS)])
        total = np.zeros((leaves.shape[0], self.value.shape[1]), dtype=np.float64)
        for tree in range(leaves.shape[1]):
            total += self.value[leaves[:, tree]]
        total /= leaves.shape[1]
        return total
