"""LayerNAS for Keras Tuner: cost-targeted search over any layerwise HyperModel.

```python
import keras, layernas_tf
from layernas_tf.keras_tuner import LayerNAS

def build_model(hp):
    model = keras.Sequential([keras.Input((8, 8, 1))])
    for i in range(3):
        model.add(keras.layers.Conv2D(hp.Choice(f"filters_{i}", [8, 16, 32]), 3, padding="same", activation="relu"))
    model.add(keras.layers.GlobalAveragePooling2D())
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

tuner = LayerNAS(build_model, objective="val_accuracy", max_trials=12,
                 target=layernas_tf.Target("params", 6000), directory="runs", project_name="digits")
tuner.search(x, y, epochs=2, validation_data=(x_val, y_val))
```

Each tunable `Choice`, `Boolean` and stepped `Int`/`Float` hyperparameter is one LayerNAS layer, in
the order the hypermodel first declares it; `Fixed` ones keep their value. Options keep their
declared order: the searcher finds each layer's cheapest and costliest option itself. Candidates
are costed without training: by `cost_fn(values)` when given, otherwise by building the hypermodel
(weights left uninitialized) and counting MAdds and params with `layernas_tf.keras_count`, most of
them by per-layer look-ups learnt from a few builds (`CandidateCosts`). Costs are cached per
candidate. The oracle drives the project's own LayerNAS searcher (`layernas_tf.search`) through its
ask/tell interface; each proposal is counted on its built model before it is handed to a tuner, so
a candidate over the target is never trained. A candidate proposed again is answered from its
first trial instead of being trained twice, unless the searcher asks for it again to evaluate it
again (LayerNAS's `replicates`): then it is a trial of its own.
"""

from __future__ import annotations

import math
import numbers
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import keras_tuner
from keras_tuner.engine import trial as trial_module

from layernas_tf.api import Target
from layernas_tf.costs import Costs
from layernas_tf.keras_count import count_without_weights
from layernas_tf.search import Problem, make_searcher
from layernas_tf.search.base import HandOut
from layernas_tf.search.problem import Encoding, InfeasibleTargetError

# LayerNAS settings the oracle changes from the searcher's defaults. Unsearched layers at their
# cheapest option: every sweep child then meets the target, so none is skipped untrained (with
# fill="default", children over the target would be answered as failed without training).
SEARCHER_SETTINGS = {"fill": "cheapest"}
# How long a tuner waits before asking again when the oracle has nothing to hand out yet.
IDLE_WAIT_SECONDS = 0.5
# A layer with more options than this is almost surely a continuous range given a step of 1 by mistake.
MAX_OPTIONS = 256
_RUNNING, _IDLE, _STOPPED = (trial_module.TrialStatus.RUNNING, trial_module.TrialStatus.IDLE,
                             trial_module.TrialStatus.STOPPED)


class UnsearchableSpaceError(ValueError):
    """The hypermodel's hyperparameters cannot be searched layer by layer."""


class CostFunctionError(ValueError):
    """`cost_fn` (or building the hypermodel to count it) failed on a candidate."""


# ---------------------------------------------------------------------------------------------------
# The space: hyperparameters -> layers of options.
# ---------------------------------------------------------------------------------------------------


class LayerTable:
    """The searchable layers of a `keras_tuner.HyperParameters`: names, options and defaults.

    Raises:
      UnsearchableSpaceError: a hyperparameter under `conditional_scope`, a `Float` (or log-sampled
        `Int`) without a step, a layer with more than MAX_OPTIONS options, or no searchable
        hyperparameter at all (each message names the hyperparameter).
    """

    def __init__(self, hyperparameters: keras_tuner.HyperParameters):
        self.names: List[str] = []
        self.options: List[Tuple] = []
        self.default: List[int] = []
        self.fixed: Dict[str, object] = {}
        for hp in hyperparameters.space:
            if hp.conditions:
                raise UnsearchableSpaceError(
                    f"hyperparameter {hp.name!r} is declared under conditional_scope; LayerNAS searches a fixed list "
                    "of layers: declare it unconditionally (and ignore it where it does not apply) or make it Fixed")
            kind = type(hp).__name__
            if kind == "Fixed":
                self.fixed[hp.name] = hp.value
                continue
            if kind == "Choice":
                values = tuple(hp.values)
            elif kind == "Boolean":
                values = (False, True)
            elif kind in ("Int", "Float"):
                if hp.step is None:
                    raise UnsearchableSpaceError(
                        f"hyperparameter {hp.name!r} is a {kind} from {hp.min_value} to {hp.max_value} without a step; "
                        f"LayerNAS needs a finite list of options per layer: give it a step (e.g. hp.{kind}("
                        f"{hp.name!r}, {hp.min_value}, {hp.max_value}, step=...)) or use hp.Choice")
                values = tuple(int(v) if kind == "Int" else float(v) for v in hp.values)
            else:
                raise UnsearchableSpaceError(f"hyperparameter {hp.name!r} is a {kind}; LayerNAS searches Choice, "
                                             "Boolean and stepped Int/Float hyperparameters (Fixed ones stay fixed)")
            if len(values) > MAX_OPTIONS:
                raise UnsearchableSpaceError(
                    f"hyperparameter {hp.name!r} has {len(values)} options; at most {MAX_OPTIONS} per layer: use a "
                    "larger step or a Choice")
            if len(values) == 1:
                self.fixed[hp.name] = values[0]
                continue
            self.names.append(hp.name)
            self.options.append(values)
            self.default.append(_index_of(values, hp.default))
        if not self.names:
            fixed = f" (Fixed: {', '.join(self.fixed)})" if self.fixed else ""
            raise UnsearchableSpaceError(
                "the hypermodel declares no searchable hyperparameter" + fixed + "; LayerNAS needs at least one "
                "Choice, Boolean or stepped Int/Float with two or more options")

    @property
    def num_options(self) -> Tuple[int, ...]:
        return tuple(len(o) for o in self.options)

    def values(self, encoding: Sequence[int]) -> Dict[str, object]:
        """The hyperparameter values of `encoding` (fixed ones included)."""
        values = dict(self.fixed)
        values.update((name, options[i]) for name, options, i in zip(self.names, self.options, encoding))
        return values

    def encoding(self, values: Dict[str, object]) -> Encoding:
        """The encoding of a trial's `values`."""
        return tuple(_index_of(options, values[name]) for name, options in zip(self.names, self.options))


def _index_of(values: Sequence, value) -> int:
    for i, v in enumerate(values):
        if v == value and isinstance(v, bool) == isinstance(value, bool):
            return i
    if isinstance(value, numbers.Real) and not isinstance(value, bool):  # floats off the grid by rounding
        return min(range(len(values)), key=lambda i: abs(values[i] - value))
    return 0


# ---------------------------------------------------------------------------------------------------
# Costs without training.
# ---------------------------------------------------------------------------------------------------


class CandidateCosts:
    """Cost of an encoding under the target's metric, cached per candidate.

    With `cost_fn`, its value. Otherwise the hypermodel is built with the candidate's values and
    counted layer by layer (MAdds and params both kept). Building is what costs time, and the
    searcher checks far more candidates than it proposes, so `learn` looks for the structure most
    layerwise hypermodels have: the same layers for every candidate, each layer's cost set by a few
    hyperparameters (those whose change alone changes it). When random candidates built to check
    it are predicted exactly, a candidate whose every layer's setting was already seen is costed
    by a sum of look-ups; any other candidate is built, which teaches the settings it has. Costs of
    trials are always counted on the built model (`exact`); a prediction found wrong switches the
    look-ups off for good.

    `seconds` is the time spent costing, `builds` the number of models built.
    """

    def __init__(self, table: LayerTable, hyperparameters, metric: str, cost_fn=None, hypermodel=None):
        if cost_fn is None and metric == "latency_ms":
            raise ValueError("a latency_ms target needs cost_fn(values) -> milliseconds (e.g. a latency predictor)")
        if cost_fn is None and hypermodel is None:
            raise ValueError("LayerNASOracle needs cost_fn(values) -> float, or the hypermodel to build and count "
                             "(LayerNAS passes it; LayerNASOracle(..., hypermodel=...))")
        self.table, self.hyperparameters, self.metric = table, hyperparameters, metric
        self.cost_fn, self.hypermodel = cost_fn, hypermodel
        self.built: Dict[Encoding, Costs] = {}  # counted on a built model
        self.predicted: Dict[Encoding, Costs] = {}  # summed from per-layer look-ups
        self.custom: Dict[Encoding, float] = {}
        self.kinds: Optional[Tuple[str, ...]] = None  # the layer classes every candidate has, in order
        self.depends: Optional[List[Tuple[int, ...]]] = None  # per layer, the hyperparameters setting its cost
        self.layer_costs: Dict[Tuple[int, Tuple[int, ...]], Costs] = {}
        self.seconds = 0.0
        self.builds = 0

    @property
    def evaluations(self) -> int:
        """Candidates costed so far (built, predicted or given by cost_fn)."""
        return len(self.custom) if self.cost_fn is not None else len(self.built.keys() | self.predicted.keys())

    def __call__(self, encoding: Encoding) -> float:
        encoding = tuple(encoding)
        if self.cost_fn is not None:
            if encoding not in self.custom:
                self.custom[encoding] = self._timed(self._custom, encoding)
            return self.custom[encoding]
        return getattr(self.costs(encoding), self.metric)

    def costs(self, encoding: Encoding) -> Costs:
        """MAdds and params of a candidate: counted, or predicted from look-ups when `learn` found
        the hypermodel's structure."""
        encoding = tuple(encoding)
        known = self.built.get(encoding) or self.predicted.get(encoding)
        if known is None:
            known = self._timed(self._predict_or_build, encoding)
        return known

    def exact(self, encoding: Encoding) -> Costs:
        """MAdds and params counted on the built candidate. A prediction that differs switches the
        look-ups off."""
        encoding = tuple(encoding)
        if encoding not in self.built:
            self._timed(self._build, encoding)
        counted = self.built[encoding]
        if encoding in self.predicted and self.predicted[encoding] != counted:
            self.depends = None
        return counted

    def learn(self, checks: int = 8, seed: int = 0) -> bool:
        """Build the default and each one-hyperparameter change of it, find which hyperparameters
        set each layer's cost, and check the look-ups on `checks` random candidates. Returns True
        when they hold (then `costs` predicts); False when the layers differ between candidates or a
        check fails (then every candidate is built)."""
        import random

        default = tuple(self.table.default)
        changed = [(i, o) for i, n in enumerate(self.table.num_options) for o in range(n) if o != default[i]]
        per_layer = {default: self._timed(self._layers, default)}
        for i, o in changed:
            encoding = default[:i] + (o,) + default[i + 1:]
            per_layer[encoding] = self._timed(self._layers, encoding)
        kinds = {tuple(k for k, _ in layers) for layers in per_layer.values()}
        if len(kinds) != 1:
            return False
        base = per_layer[default]
        depends = []
        for position, (_, cost) in enumerate(base):
            depends.append(tuple(sorted({i for i, o in changed
                                         if per_layer[default[:i] + (o,) + default[i + 1:]][position][1] != cost})))
        self.kinds, self.depends = kinds.pop(), depends
        for encoding, layers in per_layer.items():
            self._remember(encoding, layers)
        rng = random.Random(seed)
        for _ in range(checks):
            encoding = tuple(rng.randrange(n) for n in self.table.num_options)
            predicted = self._predicted(encoding)
            if encoding in self.built:
                continue
            self._timed(self._build, encoding)
            if self.depends is None or (predicted is not None and predicted != self.built[encoding]):
                self.depends = None
                return False
        return True

    # -- internals ----------------------------------------------------------------------------------
    def _timed(self, fn, encoding):
        start = time.perf_counter()
        try:
            return fn(encoding)
        finally:
            self.seconds += time.perf_counter() - start

    def _custom(self, encoding: Encoding) -> float:
        values = self.table.values(encoding)
        try:
            value = self.cost_fn(dict(values))
        except Exception as e:
            raise CostFunctionError(f"cost_fn raised {type(e).__name__}: {e} for values {values}") from e
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise CostFunctionError(f"cost_fn returned {value!r} for values {values}; it must return a finite "
                                    "number >= 0")
        return float(value)

    def _layers(self, encoding: Encoding) -> List[Tuple[str, Costs]]:
        from layernas_tf.keras_count import count_layers

        values = self.table.values(encoding)
        hp = self.hyperparameters.copy()
        hp.values = dict(values)
        try:
            layers = count_without_weights(lambda: self.hypermodel.build(hp), count_layers)
        except Exception as e:
            raise CostFunctionError(f"building the hypermodel to count its {self.metric} failed with "
                                    f"{type(e).__name__}: {e} for values {values}") from e
        self.builds += 1
        self.built[encoding] = Costs(sum(c.madds for _, c in layers), sum(c.params for _, c in layers))
        return layers

    def _build(self, encoding: Encoding) -> Costs:
        layers = self._layers(encoding)
        if self.depends is not None:
            if tuple(k for k, _ in layers) != self.kinds:
                self.depends = None
            else:
                self._remember(encoding, layers)
        return self.built[encoding]

    def _remember(self, encoding: Encoding, layers) -> None:
        for position, ((_, cost), depends) in enumerate(zip(layers, self.depends)):
            key = (position, tuple(encoding[i] for i in depends))
            if self.layer_costs.setdefault(key, cost) != cost:  # a layer's cost depends on more: stop predicting
                self.depends = None
                return

    def _predicted(self, encoding: Encoding) -> Optional[Costs]:
        if self.depends is None:
            return None
        madds = params = 0
        for position, depends in enumerate(self.depends):
            cost = self.layer_costs.get((position, tuple(encoding[i] for i in depends)))
            if cost is None:
                return None
            madds, params = madds + cost.madds, params + cost.params
        return Costs(madds, params)

    def _predict_or_build(self, encoding: Encoding) -> Costs:
        predicted = self._predicted(encoding)
        if predicted is not None:
            self.predicted[encoding] = predicted
            return predicted
        return self._build(encoding)


# ---------------------------------------------------------------------------------------------------
# The oracle.
# ---------------------------------------------------------------------------------------------------


class LayerNASOracle(keras_tuner.Oracle):
    """A Keras Tuner oracle proposing candidates with the project's LayerNAS searcher, within `target`.

    Args:
      objective: as for any Keras Tuner oracle (e.g. "val_accuracy"); the searcher maximizes it (or
        its negative for a "min" objective).
      max_trials: at most this many proposals (answers to repeated proposals included).
      target: a `layernas_tf.Target` (metric "madds", "params", or "latency_ms" with `cost_fn`).
      cost_fn: `cost_fn(values) -> float`, the target metric of a dict of hyperparameter values;
        None: build the hypermodel and count MAdds or params.
      seed: seed of the oracle (and of the searcher's replay checks).
      hypermodel: the HyperModel to build and count when `cost_fn` is None (`LayerNAS` passes it).
      searcher_settings: LayerNAS settings (`layernas_tf.search.layernas.LayerNAS`), e.g.
        {"per_bucket": 2}.
      hyperparameters, allow_new_entries, tune_new_entries, max_retries_per_trial,
      max_consecutive_failed_trials: as for `keras_tuner.Oracle`.

    The space is read once, the first time a trial is asked for (`LayerNAS` does it when it is
    built, so bad input fails before any training); hyperparameters that first appear later are
    not searched. Costs of the trials' candidates are in `trial_costs` (trial id -> dict).
    """

    def __init__(self, objective=None, max_trials: int = 10, target: Optional[Target] = None,
                 cost_fn: Optional[Callable[[Dict[str, object]], float]] = None, seed: Optional[int] = None,
                 hypermodel=None, searcher_settings: Optional[dict] = None, hyperparameters=None,
                 allow_new_entries: bool = True, tune_new_entries: bool = True, max_retries_per_trial: int = 0,
                 max_consecutive_failed_trials: int = 3):
        if not isinstance(target, Target):
            raise TypeError(f"target must be a layernas_tf.Target (e.g. Target('params', 1e5)), got {target!r}")
        if not isinstance(max_trials, int) or isinstance(max_trials, bool) or max_trials < 1:
            raise ValueError(f"max_trials must be an integer >= 1, got {max_trials!r}")
        if cost_fn is not None and not callable(cost_fn):
            raise TypeError(f"cost_fn must be callable as cost_fn(values) -> float, got {cost_fn!r}")
        super().__init__(objective=objective, max_trials=max_trials, hyperparameters=hyperparameters,
                         allow_new_entries=allow_new_entries, tune_new_entries=tune_new_entries, seed=seed,
                         max_retries_per_trial=max_retries_per_trial,
                         max_consecutive_failed_trials=max_consecutive_failed_trials)
        self.target, self.cost_fn, self.hypermodel = target, cost_fn, hypermodel
        self.searcher_settings = {**SEARCHER_SETTINGS, **(searcher_settings or {})}
        self.searcher = None
        self.table: Optional[LayerTable] = None
        self.candidate_costs: Optional[CandidateCosts] = None
        # The hand-out log, in hand-out order: what rebuilds the searcher on resume.
        self.handouts: List[dict] = []
        self.trial_costs: Dict[str, dict] = {}
        self._told = 0
        self._queue: List[Tuple[Encoding, int]] = []  # (proposal, results told when asked), not handed out yet

    # -- the space and the searcher ------------------------------------------------------------------
    def prepare(self) -> None:
        """Read the space, cost the candidates the searcher needs up front and rebuild the searcher
        from the hand-out log. Idempotent.

        Raises:
          UnsearchableSpaceError, CostFunctionError, InfeasibleTargetError (naming the cheapest
          candidate and its cost), or ValueError for bad searcher settings.
        """
        if self.searcher is not None:
            return
        table = LayerTable(self.hyperparameters)
        cost = self._space_cost(table)
        if cost is None:
            self.candidate_costs = CandidateCosts(table, self.hyperparameters, self.target.metric, self.cost_fn,
                                                  self.hypermodel)
            if self.cost_fn is None:
                self.candidate_costs.learn(seed=self.seed)
            cost, attributes = self.candidate_costs, None
        else:
            cost, attributes = cost
        try:
            problem = Problem(table.num_options, cost, self.target.max_value, self.target.min_value,
                              default=tuple(table.default), option_attributes=attributes)
        except InfeasibleTargetError as e:
            raise InfeasibleTargetError(self._infeasible_message(table, cost)) from e
        searcher = make_searcher("layernas", problem, self.max_trials, self.seed, **self.searcher_settings)
        searcher.replay_log(HandOut(tuple(h["encoding"]), h["reward"], h["told_before"], h["told_order"])
                            for h in self.handouts)
        self.table, self.searcher = table, searcher
        self._told = sum(h["told_order"] is not None for h in self.handouts)

    def _space_cost(self, table: LayerTable):
        """(cost, option_attributes) from a hypermodel that knows its analytic costs, or None."""
        know = getattr(self.hypermodel, "layernas_cost", None)
        if self.cost_fn is not None or know is None:
            return None
        return know(table, self.target.metric)

    def _infeasible_message(self, table: LayerTable, cost) -> str:
        metric = self.target.metric
        cheapest = list(table.default)
        for layer, n in enumerate(table.num_options):  # each layer's cheapest option, others at default
            base = list(table.default)
            costs = []
            for option in range(n):
                base[layer] = option
                costs.append((cost(tuple(base)), option))
            cheapest[layer] = min(costs)[1]
        low = cost(tuple(cheapest))
        side = (f"<= {self.target.max_value:,.6g}: the cheapest candidate, {table.values(cheapest)}, has "
                f"{metric} {low:,.6g}")
        if low <= self.target.max_value:  # the lower bound is what fails
            side = f">= {self.target.min_value:,.6g}: no candidate costs that much"
        return f"target {metric} {side}; no candidate of this hypermodel meets {self.target.describe()}"

    # -- Keras Tuner's oracle interface ---------------------------------------------------------------
    def populate_space(self, trial_id):
        self.prepare()
        while True:
            if not self._queue:
                # One proposal per idle tuner: a batch serves several workers at once, as the coordinator does.
                idle_tuners = max(1, len(self.tuner_ids) - len(self.ongoing_trials))
                self._queue = [(tuple(e), self._told) for e in self.searcher.ask(idle_tuners)]
                if not self._queue:
                    return {"status": _STOPPED if self.searcher.done or not self.searcher.pending else _IDLE}
            encoding, told_before = self._queue.pop(0)
            record = {"encoding": list(encoding), "trial_id": None, "reward": None, "told_before": told_before,
                      "told_order": None}
            self.handouts.append(record)
            if not self._meets_target(encoding):  # never trained: answered as failed
                self._tell(record, None)
                continue
            original = None if self.searcher.repeats_are_replicates else self._trained_record(encoding)
            if original is not None:
                record["repeat_of"] = original["trial_id"]
                if original["told_order"] is not None:  # answered from its finished trial
                    self._tell(record, original["reward"])
                continue  # else answered when the running one ends
            record["trial_id"] = trial_id
            self.trial_costs[trial_id] = self._describe(encoding)
            return {"status": _RUNNING, "values": self.table.values(encoding)}

    def _meets_target(self, encoding: Encoding) -> bool:
        if self.candidate_costs is not None and self.cost_fn is None:  # counted on the built model, not predicted
            value = getattr(self.candidate_costs.exact(encoding), self.target.metric)
            return self.target.min_value <= value <= self.target.max_value
        return self.searcher.problem.feasible(encoding)

    def _trained_record(self, encoding: Encoding) -> Optional[dict]:
        for record in self.handouts:
            if record["trial_id"] is not None and tuple(record["encoding"]) == encoding:
                return record
        return None

    def _describe(self, encoding: Encoding) -> dict:
        if self.candidate_costs is not None and self.cost_fn is None:
            costs = self.candidate_costs.exact(encoding)
            return {"encoding": list(encoding), "madds": costs.madds, "params": costs.params}
        description = {"encoding": list(encoding), self.target.metric: self.searcher.problem.cost_of(encoding)}
        return description

    @keras_tuner.synchronized
    def end_trial(self, trial):
        try:
            super().end_trial(trial)  # raises when max_consecutive_failed_trials is reached
        finally:
            self._tell_ended(self.trials[trial.trial_id])

    def _tell_ended(self, trial) -> None:
        """Tell the searcher a trial's final result (and answer the repeats that waited for it)."""
        if trial.trial_id in self._retry_queue or self.searcher is None:
            return  # it runs again; the searcher hears of it when it is final
        record = next((r for r in self.handouts if r["trial_id"] == trial.trial_id), None)
        if record is None or record["told_order"] is not None:
            return
        reward = None
        if trial.status == trial_module.TrialStatus.COMPLETED and trial.score is not None:
            reward = float(trial.score) if self.objective.direction == "max" else -float(trial.score)
        self._tell(record, reward)
        for repeat in self.handouts:
            if repeat.get("repeat_of") == trial.trial_id and repeat["told_order"] is None:
                self._tell(repeat, reward)
        self.save()

    def _tell(self, record: dict, reward: Optional[float]) -> None:
        if reward is not None and not math.isfinite(reward):
            reward = None
        record["reward"], record["told_order"] = reward, self._told
        self._told += 1
        self.searcher.tell(tuple(record["encoding"]), reward)

    def get_state(self):
        state = super().get_state()
        state["layernas"] = {"handouts": self.handouts, "trial_costs": self.trial_costs}
        return state

    def set_state(self, state):
        super().set_state(state)
        saved = state.get("layernas", {})
        self.handouts = [dict(h) for h in saved.get("handouts", [])]
        self.trial_costs = dict(saved.get("trial_costs", {}))
        self.searcher, self._queue = None, []  # rebuilt from the log by `prepare`

    def costing_seconds(self) -> float:
        """Seconds spent costing candidates so far (0 with a hypermodel's analytic costs)."""
        return self.candidate_costs.seconds if self.candidate_costs is not None else 0.0


# ---------------------------------------------------------------------------------------------------
# The tuner.
# ---------------------------------------------------------------------------------------------------


class LayerNAS(keras_tuner.Tuner):
    """Keras Tuner tuner searching with LayerNAS under a cost target, used like `keras_tuner.RandomSearch`.

    Args:
      hypermodel: a `keras_tuner.HyperModel` or a `build(hp)` function returning a compiled model.
      objective, max_trials, target, seed, cost_fn, searcher_settings, hyperparameters,
      tune_new_entries, allow_new_entries, max_retries_per_trial, max_consecutive_failed_trials:
        see `LayerNASOracle`.
      **tuner_kwargs: `keras_tuner.Tuner` arguments (directory, project_name, overwrite,
        executions_per_trial, max_model_size, ...).

    Raises (on construction, before any training): UnsearchableSpaceError, CostFunctionError,
    InfeasibleTargetError, TypeError/ValueError for a bad target or max_trials.
    """

    def __init__(self, hypermodel=None, objective=None, max_trials: int = 10, target: Optional[Target] = None,
                 seed: Optional[int] = None, cost_fn=None, searcher_settings: Optional[dict] = None,
                 hyperparameters=None, tune_new_entries: bool = True, allow_new_entries: bool = True,
                 max_retries_per_trial: int = 0, max_consecutive_failed_trials: int = 3, **tuner_kwargs):
        oracle = LayerNASOracle(objective=objective, max_trials=max_trials, target=target, cost_fn=cost_fn,
                                seed=seed, searcher_settings=searcher_settings, hyperparameters=hyperparameters,
                                tune_new_entries=tune_new_entries, allow_new_entries=allow_new_entries,
                                max_retries_per_trial=max_retries_per_trial,
                                max_consecutive_failed_trials=max_consecutive_failed_trials)
        super().__init__(oracle, hypermodel, **tuner_kwargs)
        if isinstance(self.oracle, LayerNASOracle):  # the chief or a single process; a worker has a client
            self.oracle.hypermodel = self.hypermodel
            self.oracle.prepare()
        self._asked_without_trial = False

    def pre_create_trial(self):
        # Keras Tuner asks again at once after an IDLE answer ("wait for running results"); a worker
        # whose last ask got no trial waits a moment instead of polling the chief in a tight loop.
        if self._asked_without_trial:
            time.sleep(IDLE_WAIT_SECONDS)
        self._asked_without_trial = True

    def on_trial_begin(self, trial):
        self._asked_without_trial = False
        super().on_trial_begin(trial)


# ---------------------------------------------------------------------------------------------------
# The project's search spaces as HyperModels.
# ---------------------------------------------------------------------------------------------------


class SpaceHyperModel(keras_tuner.HyperModel):
    """A `searchspaces` space as a Keras Tuner HyperModel: one `Choice` of option indices per layer.

    Args:
      space: a `searchspaces.SearchSpace` or its name (e.g. "mobilenet_v3_small").
      input_size: square input size (default: the space's).
      num_classes: classifier width (default: the space's).
      learning_rate: Adam's learning rate in the default compile.
      bn_momentum: BatchNormalization momentum (0.9 suits short proxy training).

    Under LayerNAS with a "madds" or "params" target it costs candidates with the analytic profiler
    (`layernas_tf.costs`), as the project's own search does.
    """

    def __init__(self, space, input_size: Optional[int] = None, num_classes: Optional[int] = None,
                 learning_rate: float = 1e-3, bn_momentum: float = 0.9, name: Optional[str] = None):
        import searchspaces

        self.space = searchspaces.get_space(space) if isinstance(space, str) else space
        self.input_size = int(input_size or self.space.input_size)
        self.num_classes = int(num_classes or self.space.num_classes)
        if self.input_size < 1 or self.num_classes < 2:
            raise ValueError(f"input_size must be >= 1 and num_classes >= 2, got {self.input_size}, {self.num_classes}")
        self.learning_rate, self.bn_momentum = learning_rate, bn_momentum
        super().__init__(name=name or self.space.name)

    def encoding(self, values: Dict[str, object]) -> Encoding:
        """The space's encoding of a dict of hyperparameter values (e.g. `trial.hyperparameters.values`)."""
        return tuple(int(values[layer.name]) for layer in self.space.layers)

    def declare_hyperparameters(self, hp) -> Encoding:
        return tuple(hp.Choice(layer.name, list(range(len(layer.options))), default=layer.default)
                     for layer in self.space.layers)

    def build(self, hp):
        import keras

        from searchspaces.builder import build

        encoding = self.declare_hyperparameters(hp)
        model = build(self.space, encoding, (self.input_size, self.input_size, 3), self.num_classes,
                      bn_momentum=self.bn_momentum)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def layernas_cost(self, table: LayerTable, metric: str):
        """(cost, option_attributes) of the space for `metric`, the project's own, or None when the
        table is not this space's layers (another hypermodel's, or extra hyperparameters)."""
        from layernas_tf.costs import COST_METRICS, cost_function

        layers = self.space.layers
        if metric not in COST_METRICS or table.names != [layer.name for layer in layers] or any(
                options != tuple(range(len(layer.options))) for options, layer in zip(table.options, layers)):
            return None
        return (cost_function(self.space, metric, self.input_size, self.num_classes),
                self.space.option_attributes())


__all__ = ["CandidateCosts", "CostFunctionError", "LayerNAS", "LayerNASOracle", "LayerTable", "SpaceHyperModel",
           "UnsearchableSpaceError"]
