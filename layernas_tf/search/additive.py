"""A ridge-regression model of reward as a sum of per-layer option effects.

LayerNAS rests on the assumption that layers contribute (nearly) independently; this model is that
assumption made explicit. Fitted on every evaluation so far, it pools the noise of single noisy
evaluations, which a bucket's one-sample comparison cannot. Pure Python (P = sum of options is small).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple


def _solve(matrix: List[List[float]], vector: List[float]) -> List[float]:
    """Solve a symmetric positive-definite system by Gaussian elimination with partial pivoting."""
    n = len(vector)
    a = [row[:] + [vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        p = a[col][col]
        for r in range(col + 1, n):
            f = a[r][col] / p
            if f:
                row_r, row_c = a[r], a[col]
                for c in range(col, n + 1):
                    row_r[c] -= f * row_c[c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x


class AdditiveModel:
    """reward(encoding) ~ mean + sum_i effect[i][encoding[i]], fitted by ridge regression.

    Effects are shrunk towards 0 (the mean) by `ridge`, so an option seen once moves the prediction
    little and an option seen many times is trusted.
    """

    def __init__(self, num_options: Sequence[int], ridge: float = 1.0):
        self.num_options = tuple(num_options)
        self.offsets = []
        total = 0
        for n in self.num_options:
            self.offsets.append(total)
            total += n
        self.size = total
        self.ridge = ridge
        self.count = 0
        self.mean = 0.0
        self.effects: List[List[float]] = [[0.0] * n for n in self.num_options]

    def _features(self, encoding: Sequence[int]) -> List[int]:
        return [self.offsets[i] + o for i, o in enumerate(encoding)]

    def fit(self, observations: Sequence[Tuple[Sequence[int], float]]) -> "AdditiveModel":
        """Fit on (encoding, reward) pairs (rewards centred on their mean); returns self."""
        self.count = len(observations)
        if not observations:
            self.mean, self.effects = 0.0, [[0.0] * n for n in self.num_options]
            return self
        self.mean = sum(r for _, r in observations) / self.count
        size = self.size
        xtx = [[0.0] * size for _ in range(size)]
        xty = [0.0] * size
        for encoding, reward in observations:
            feats = self._features(encoding)
            centred = reward - self.mean
            for a in feats:
                xty[a] += centred
                row = xtx[a]
                for b in feats:
                    row[b] += 1.0
        for d in range(size):
            xtx[d][d] += self.ridge
        weights = _solve(xtx, xty)
        self.effects = [weights[off:off + n] for off, n in zip(self.offsets, self.num_options)]
        return self

    def predict(self, encoding: Sequence[int]) -> float:
        return self.mean + sum(self.effects[i][o] for i, o in enumerate(encoding))
