"""Baseline searchers in the ask/tell interface: random search, regularized evolution, policy gradient.

Pure Python (standard library only). Every searcher here

* takes `constraint_aware`: when True it only proposes encodings that meet the problem's cost target
  (infeasible candidates are rejected before they cost a query); when False it ignores the cost and
  `best()` still reports only feasible answers;
* is deterministic given its seed and the asks and tells in the order they happened, which
  `Searcher.replay_log` reproduces from the hand-out log. Evolution is asynchronous: after its initial
  population, each child comes from the population as it stands when asked. Policy gradient works in
  batches and returns nothing from `ask` while the current batch's results are pending.

A failed evaluation (reward None) counts as the worst reward.
"""

from __future__ import annotations

import math
import random
from typing import Callable, List, Optional, Sequence, Tuple

from layernas_tf.search.base import Searcher, Trial
from layernas_tf.search.problem import Encoding, InfeasibleTargetError, Problem

# Random draws tried (rejection sampling) before falling back to a constructed feasible encoding.
MAX_DRAWS = 100
# Randomized constructions tried before concluding the target cannot be met (band targets only: with
# min_cost == 0 the construction always succeeds).
MAX_CONSTRUCTIONS = 100


def uniform_encoding(problem: Problem, rng: random.Random) -> Encoding:
    """An encoding drawn uniformly from the whole space, ignoring cost."""
    return tuple(rng.randrange(n) for n in problem.num_options)


def construct_feasible(
    problem: Problem, rng: random.Random, weights: Optional[Sequence[Sequence[float]]] = None
) -> Encoding:
    """A random encoding that meets the target, built one layer at a time; for when rejection fails.

    Layers are set in random order. Each picks among the options that keep the target reachable
    (the unset layers at their cheapest still fit under max_cost, and at their costliest still reach
    min_cost), uniformly or with probabilities proportional to `weights[layer]`. Relies on the cost
    not decreasing when a layer takes a costlier option (Problem's assumption).

    Raises:
      InfeasibleTargetError: if no construction reaches a narrow band target [min_cost, max_cost].
    """
    for _ in range(MAX_CONSTRUCTIONS):
        low, high = list(problem.cheapest), list(problem.costliest)
        order = list(range(problem.num_layers))
        rng.shuffle(order)
        for layer in order:
            allowed = []
            for option in range(problem.num_options[layer]):
                low[layer] = high[layer] = option
                if problem.cost_of(low) <= problem.max_cost and (
                    problem.min_cost <= 0 or problem.cost_of(high) >= problem.min_cost
                ):
                    allowed.append(option)
            if not allowed:
                break
            if weights is None:
                choice = rng.choice(allowed)
            else:
                choice = rng.choices(allowed, [weights[layer][o] for o in allowed])[0]
            low[layer] = high[layer] = choice
        else:
            # Every layer is set, so low == high and both bounds were checked on it.
            return tuple(low)
    raise InfeasibleTargetError(
        f"found no encoding with cost in [{problem.min_cost:g}, {problem.max_cost:g}] after "
        f"{MAX_CONSTRUCTIONS} randomized constructions"
    )


def draw_feasible(
    problem: Problem,
    rng: random.Random,
    draw: Callable[[], Encoding],
    weights: Optional[Sequence[Sequence[float]]] = None,
) -> Encoding:
    """Rejection-sample `draw()` until it meets the target; after MAX_DRAWS misses, construct one."""
    for _ in range(MAX_DRAWS):
        encoding = draw()
        if problem.feasible(encoding):
            return encoding
    return construct_feasible(problem, rng, weights)


def random_encoding(problem: Problem, rng: random.Random, constraint_aware: bool = True) -> Encoding:
    """Uniform over the space; constraint-aware, uniform over the feasible encodings until MAX_DRAWS
    misses in a row, then `construct_feasible`'s."""
    draw = lambda: uniform_encoding(problem, rng)  # noqa: E731
    return draw_feasible(problem, rng, draw) if constraint_aware else draw()


def _fitness(reward: Optional[float]) -> float:
    return -math.inf if reward is None else reward


class RandomSearch(Searcher):
    """Uniform random search.

    Unaware: encodings uniform over the whole space. Constraint-aware: uniform over the feasible
    encodings (rejection sampling), falling back after MAX_DRAWS misses to `construct_feasible`, so it
    terminates even on tight targets. Proposals never depend on rewards: `ask(n)` returns n at once.
    """

    name = "random"

    def __init__(self, problem: Problem, budget: int, seed: int = 0, constraint_aware: bool = True):
        super().__init__(problem, budget, seed)
        self.constraint_aware = constraint_aware

    def settings(self) -> dict:
        return {"constraint_aware": self.constraint_aware}

    def _propose(self, n: int) -> List[Encoding]:
        return [random_encoding(self.problem, self.rng, self.constraint_aware) for _ in range(n)]


class RegularizedEvolution(Searcher):
    """Aging (regularized) evolution, Real et al. 2019, as NATS-Bench runs it.

    The first `population_size` proposals are random (returned in batches). Then, one child at a time
    and only once every earlier proposal has been told: sample `tournament_size` members of the
    population uniformly with replacement, take the fittest as parent, mutate it, and when the child
    is told it joins the population and the oldest member leaves.

    Mutation: by default one random layer (among those with more than one option) moves to a
    different option, as in NATS-Bench. With `mutation_prob` p, each layer instead moves with
    probability p, and one random layer moves if none did, so a child always differs from its parent.

    Constraint-aware: the initial population is drawn like RandomSearch's; an infeasible child is
    re-mutated from the same parent, up to MAX_DRAWS times, then replaced by a feasible random
    encoding. Unaware: cost is ignored; infeasible members compete on reward alone.

    Defaults are NATS-Bench's (population 10, tournament 3): they leave most of a 25-400 query budget
    to evolution. On NAS-Bench-Macro, population 20 / tournament 5 did as well, 5 / 2 worse.
    """

    name = "regularized_evolution"

    def __init__(
        self,
        problem: Problem,
        budget: int,
        seed: int = 0,
        constraint_aware: bool = True,
        population_size: int = 10,
        tournament_size: int = 3,
        mutation_prob: Optional[float] = None,
    ):
        super().__init__(problem, budget, seed)
        if population_size < 1 or tournament_size < 1:
            raise ValueError(f"population_size and tournament_size must be >= 1, got "
                             f"{population_size}, {tournament_size}")
        if mutation_prob is not None and not 0.0 <= mutation_prob <= 1.0:
            raise ValueError(f"mutation_prob must be in [0, 1], got {mutation_prob}")
        self.constraint_aware = constraint_aware
        self.population_size = int(population_size)
        self.tournament_size = int(tournament_size)
        self.mutation_prob = mutation_prob
        # (encoding, reward) in the order told; the oldest is first.
        self.population: List[Tuple[Encoding, Optional[float]]] = []
        self._mutable = [i for i, n in enumerate(problem.num_options) if n > 1]

    def settings(self) -> dict:
        return {"constraint_aware": self.constraint_aware, "population_size": self.population_size,
                "tournament_size": self.tournament_size, "mutation_prob": self.mutation_prob}

    def _move(self, child: List[int], layer: int) -> None:
        # A different option of the same layer, uniformly.
        option = self.rng.randrange(self.problem.num_options[layer] - 1)
        child[layer] = option + (option >= child[layer])

    def mutate(self, parent: Encoding) -> Encoding:
        """A child of `parent` differing in at least one layer (unless no layer has two options)."""
        if not self._mutable:
            return parent
        child = list(parent)
        moved = False
        if self.mutation_prob is not None:
            for layer in self._mutable:
                if self.rng.random() < self.mutation_prob:
                    self._move(child, layer)
                    moved = True
        if not moved:
            self._move(child, self.rng.choice(self._mutable))
        return tuple(child)

    def _child(self) -> Encoding:
        contenders = [self.rng.choice(self.population) for _ in range(self.tournament_size)]
        # max keeps the first of equals, so ties go to the earlier draw: deterministic.
        parent = max(contenders, key=lambda member: _fitness(member[1]))[0]
        if not self.constraint_aware:
            return self.mutate(parent)
        return draw_feasible(self.problem, self.rng, lambda: self.mutate(parent))

    def _propose(self, n: int) -> List[Encoding]:
        proposed = len(self.trials) + len(self.pending)
        if proposed < self.population_size:
            count = min(n, self.population_size - proposed)
            return [random_encoding(self.problem, self.rng, self.constraint_aware) for _ in range(count)]
        if not self.population:
            return []  # no parent has a result yet
        # Asynchronous: each child comes from the population as it stands, results still pending or not.
        return [self._child() for _ in range(n)]

    def _observe(self, trial: Trial) -> None:
        self.population.append((trial.encoding, trial.reward))
        if len(self.population) > self.population_size:
            self.population.pop(0)


class _Adam:
    """Adam on a list of per-layer logit lists (ascent), plain Python."""

    def __init__(self, shape: Sequence[int], learning_rate: float, beta1=0.9, beta2=0.999, eps=1e-8):
        self.learning_rate, self.beta1, self.beta2, self.eps = learning_rate, beta1, beta2, eps
        self.m = [[0.0] * n for n in shape]
        self.v = [[0.0] * n for n in shape]
        self.t = 0

    def step(self, params: List[List[float]], grads: List[List[float]]) -> None:
        self.t += 1
        bias1 = 1.0 - self.beta1 ** self.t
        bias2 = 1.0 - self.beta2 ** self.t
        for p, g, m, v in zip(params, grads, self.m, self.v):
            for j, gj in enumerate(g):
                m[j] = self.beta1 * m[j] + (1.0 - self.beta1) * gj
                v[j] = self.beta2 * v[j] + (1.0 - self.beta2) * gj * gj
                p[j] += self.learning_rate * (m[j] / bias1) / (math.sqrt(v[j] / bias2) + self.eps)


def _softmax(logits: Sequence[float]) -> List[float]:
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    total = sum(exps)
    return [e / total for e in exps]


class PolicyGradient(Searcher):
    """A factorized categorical controller (one softmax per layer) trained by policy gradient.

    The controller NATS-Bench and the LayerNAS paper compare against. Logits start at zero (uniform
    policy) and are trained with Adam on the evaluated samples, in batches of `batch_size`: the
    samples of a batch all come from the same policy, and the next batch is proposed only after the
    whole batch has been told and the policy updated.

    method="reinforce": one gradient step per batch on mean(advantage * grad log pi).
    method="ppo": `ppo_epochs` steps per batch on the clipped surrogate
      mean(min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A)), ratio = pi(a) / pi_old(a).
    The advantage is reward minus an exponential moving average of past rewards (momentum
    `baseline_momentum`, started at the first batch's mean). Adam makes the step size insensitive to
    the reward's scale (accuracy in % or as a fraction). An optional entropy bonus (off by default:
    it did not help at these budgets) keeps the policy from collapsing early.

    Constraint-aware: proposals are drawn from the policy restricted to feasible encodings (rejection
    sampling, then a construction weighted by the policy); the update uses the unrestricted log
    probabilities of the evaluated samples only. Unaware: cost is ignored.
    """

    name = "policy_gradient"
    # method -> (learning_rate, batch_size). Chosen to learn within 25-400 queries (NAS-Bench-Macro and
    # a synthetic additive table): NATS-Bench's REINFORCE rate 0.01 barely moves the policy in 100
    # queries, 0.2 collapses it early; PPO batches of 10 learn slower than 5 at these budgets.
    _DEFAULTS = {
        "ppo": (0.1, 5),
        "reinforce": (0.1, 1),
    }

    def __init__(
        self,
        problem: Problem,
        budget: int,
        seed: int = 0,
        constraint_aware: bool = True,
        method: str = "ppo",
        learning_rate: Optional[float] = None,
        batch_size: Optional[int] = None,
        baseline_momentum: float = 0.9,
        entropy_weight: float = 0.0,
        ppo_epochs: int = 4,
        ppo_clip: float = 0.2,
    ):
        super().__init__(problem, budget, seed)
        if method not in self._DEFAULTS:
            raise ValueError(f"method must be one of {sorted(self._DEFAULTS)}, got {method!r}")
        default_lr, default_batch = self._DEFAULTS[method]
        self.constraint_aware = constraint_aware
        self.method = method
        self.learning_rate = default_lr if learning_rate is None else float(learning_rate)
        self.batch_size = default_batch if batch_size is None else int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        self.baseline_momentum = float(baseline_momentum)
        self.entropy_weight = float(entropy_weight)
        self.ppo_epochs = int(ppo_epochs)
        self.ppo_clip = float(ppo_clip)
        self.logits = [[0.0] * n for n in problem.num_options]
        self.baseline: Optional[float] = None
        self._adam = _Adam(problem.num_options, self.learning_rate)

    def settings(self) -> dict:
        settings = {"constraint_aware": self.constraint_aware, "method": self.method,
                    "learning_rate": self.learning_rate, "batch_size": self.batch_size,
                    "baseline_momentum": self.baseline_momentum, "entropy_weight": self.entropy_weight}
        if self.method == "ppo":
            settings.update(ppo_epochs=self.ppo_epochs, ppo_clip=self.ppo_clip)
        return settings

    def probabilities(self) -> List[List[float]]:
        """The current policy: per layer, the probability of each option."""
        return [_softmax(z) for z in self.logits]

    # -- sampling -----------------------------------------------------------------------------
    def _propose(self, n: int) -> List[Encoding]:
        proposed = len(self.trials) + len(self.pending)
        in_batch = proposed % self.batch_size
        if in_batch == 0 and self.pending:
            return []  # the next batch needs the policy updated on the whole current one
        probs = self.probabilities()
        draw = lambda: tuple(self._sample_option(p) for p in probs)  # noqa: E731
        count = min(n, self.batch_size - in_batch)
        if not self.constraint_aware:
            return [draw() for _ in range(count)]
        return [draw_feasible(self.problem, self.rng, draw, probs) for _ in range(count)]

    def _sample_option(self, probs: Sequence[float]) -> int:
        u = self.rng.random()
        for option, p in enumerate(probs):
            u -= p
            if u < 0:
                return option
        return len(probs) - 1  # rounding left u >= 0 after the last option

    # -- learning -----------------------------------------------------------------------------
    def _observe(self, trial: Trial) -> None:
        if len(self.trials) % self.batch_size == 0:
            self._update(self.trials[-self.batch_size:])

    def _log_prob(self, probs: List[List[float]], encoding: Encoding) -> float:
        return sum(math.log(p[o]) for p, o in zip(probs, encoding))

    def _update(self, batch: List[Trial]) -> None:
        rewards = [t.reward for t in self.trials if t.reward is not None]
        if not rewards:
            return  # nothing has succeeded yet: no signal
        worst = min(rewards)
        batch_rewards = [worst if t.reward is None else t.reward for t in batch]
        if self.baseline is None:
            self.baseline = sum(batch_rewards) / len(batch_rewards)
        advantages = [r - self.baseline for r in batch_rewards]
        for r in batch_rewards:
            self.baseline = self.baseline_momentum * self.baseline + (1.0 - self.baseline_momentum) * r

        encodings = [t.encoding for t in batch]
        if self.method == "reinforce":
            self._adam.step(self.logits, self._gradient(encodings, advantages))
            return
        old = self.probabilities()
        old_log_probs = [self._log_prob(old, e) for e in encodings]
        for _ in range(self.ppo_epochs):
            probs = self.probabilities()
            weights = []
            for encoding, advantage, old_lp in zip(encodings, advantages, old_log_probs):
                ratio = math.exp(self._log_prob(probs, encoding) - old_lp)
                # The clipped surrogate has zero gradient where clipping is active.
                clipped = (advantage > 0 and ratio > 1.0 + self.ppo_clip) or (
                    advantage < 0 and ratio < 1.0 - self.ppo_clip)
                weights.append(0.0 if clipped else advantage * ratio)
            self._adam.step(self.logits, self._gradient(encodings, weights, probs))

    def _gradient(self, encodings, weights, probs=None) -> List[List[float]]:
        """Gradient of mean_k(weights[k] * log pi(encodings[k])) + entropy_weight * entropy."""
        probs = self.probabilities() if probs is None else probs
        grads = [[0.0] * len(p) for p in probs]
        scale = 1.0 / len(encodings)
        for encoding, weight in zip(encodings, weights):
            for g, p, option in zip(grads, probs, encoding):
                # d log softmax(z)[a] / dz_j = [j == a] - p_j
                for j, pj in enumerate(p):
                    g[j] -= scale * weight * pj
                g[option] += scale * weight
        if self.entropy_weight:
            for g, p in zip(grads, probs):
                entropy = -sum(pj * math.log(pj) for pj in p if pj > 0)
                for j, pj in enumerate(p):
                    if pj > 0:
                        g[j] -= self.entropy_weight * pj * (math.log(pj) + entropy)
        return grads
