"""A ridge-regression model of reward as a sum of per-layer option effects.

LayerNAS rests on the assumption that layers contribute (nearly) independently; this model is that
assumption made explicit. Fitted on every evaluation so far, it pools the noise of single noisy
evaluations, which a bucket's one-sample comparison cannot. No TensorFlow: the normal equations
(P x P, P = sum of options, under 200 here) are solved with numpy on one BLAS thread (a system this
small gains nothing from threads, and on busy cores spinning BLAS threads made each solve ~50x slower).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

_THREADPOOLS = None


def _one_blas_thread():
    """A context that limits BLAS to one thread (the controller is built once: it inspects the process)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


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
        self._fitted = None  # (regularised normal matrix, features, centred rewards) of the last fit
        self._noise = None  # noise_sd, once computed

    def fit(self, observations: Sequence[Tuple[Sequence[int], float]]) -> "AdditiveModel":
        """Fit on (encoding, reward) pairs (rewards centred on their mean); returns self."""
        if not observations:
            self.__init__(self.num_options, self.ridge)
            return self
        self.count = len(observations)
        rewards = np.array([r for _, r in observations], dtype=np.float64)
        self.mean = float(rewards.mean())
        features = np.array([e for e, _ in observations], dtype=np.int64) + np.array(self.offsets, dtype=np.int64)
        size = self.size
        # One-hot features: the Gram matrix counts co-occurring options, X^T y sums rewards per option.
        pairs = (features[:, :, None] * size + features[:, None, :]).ravel()
        gram = np.bincount(pairs, minlength=size * size).reshape(size, size).astype(np.float64)
        gram[np.diag_indices(size)] += self.ridge
        centred = np.repeat(rewards - self.mean, features.shape[1])
        moments = np.bincount(features.ravel(), weights=centred, minlength=size)
        with _one_blas_thread():
            weights = np.linalg.solve(gram, moments).tolist()
        self.effects = [weights[off:off + n] for off, n in zip(self.offsets, self.num_options)]
        self._fitted, self._noise = (gram, features, rewards - self.mean), None  # noise_sd uses them on demand
        return self

    def noise_sd(self) -> float:
        """The residual standard deviation, on the degrees of freedom the ridge fit leaves: the sum of
        squared residuals over N - 1 - tr(H), H = X (X'X + ridge I)^-1 X'; inf when fewer than two are
        left (the fit interpolates and says nothing about its noise)."""
        if self._fitted is None:
            return float("inf")
        if self._noise is None:
            gram, features, centred = self._fitted
            weights = np.concatenate([np.asarray(e, dtype=np.float64) for e in self.effects])
            residual_ss = float(np.sum((centred - weights[features].sum(axis=1)) ** 2))
            with _one_blas_thread():
                inverse_trace = float(np.trace(np.linalg.inv(gram)))
            left = self.count - 1 - (self.size - self.ridge * inverse_trace)
            self._noise = float("inf") if left < 2 else (residual_ss / left) ** 0.5
        return self._noise

    def option_counts(self) -> List[List[float]]:
        """How many of the fitted observations have each option of each layer (0 before a fit)."""
        if self._fitted is None:
            return [[0.0] * n for n in self.num_options]
        seen = np.diagonal(self._fitted[0]) - self.ridge
        return [seen[off:off + n].tolist() for off, n in zip(self.offsets, self.num_options)]

    def with_bonus(self, scale: float, also_seen: Sequence[Sequence[int]] = ()) -> "AdditiveModel":
        """A copy whose effects are raised by scale / sqrt(n + ridge) for an option seen n times: an
        optimistic model for ranking candidates not yet evaluated (`predict` of the copy is the
        prediction plus the bonuses of the candidate's options).

        Encodings in `also_seen` count as seen besides those fitted on, while the effects stay:
        - handed out, result not back: their results will narrow the uncertainty whatever they are,
          so the bonus shrinks now (the batch form of an upper confidence bound, as in GP-BUCB).
          Without it, every pick of a batch chases the same rarely seen option;
        - evaluated but left out of the fit (LayerNAS fits the better share of its evaluations): the
          option has been measured, and its bonus should not be that of one never tried."""
        counts = self.option_counts()
        for encoding in also_seen:
            for layer, option in enumerate(encoding):
                counts[layer][option] += 1
        optimistic = AdditiveModel(self.num_options, self.ridge)
        optimistic.count, optimistic.mean = self.count, self.mean
        optimistic.effects = [[e + scale / (n + self.ridge) ** 0.5 for e, n in zip(effects, seen)]
                              for effects, seen in zip(self.effects, counts)]
        return optimistic

    def predict(self, encoding: Sequence[int]) -> float:
        return self.mean + sum(self.effects[i][o] for i, o in enumerate(encoding))
