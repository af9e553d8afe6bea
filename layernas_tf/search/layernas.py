"""LayerNAS (Fan et al.): layer-by-layer search with candidates bucketed by cost.

For each searchable layer in turn, every candidate kept from the previous layer spawns children that
vary this layer over its options; layers not yet searched stay at the fill value. Children that can
no longer meet the cost target (even with every unsearched layer at its cheapest option) are not
evaluated, and no candidate is evaluated twice (but see `replicates`). Evaluated children are
grouped into H cost buckets; each bucket keeps its K best. Trials grow as O(H*K*sum|S_i|), not
prod|S_i|.

Beyond the paper (each is a setting; docs/search_engine.md explains them):
- num_buckets=1: H is fixed, not planned from the budget, so a run with a larger budget is the run
  with a smaller one continued (anytime); the budget left after the sweep goes to refinement.
- selection="additive": candidates are ranked by a noise-aware score, the average of their own noisy
  reward and the prediction of an additive per-layer model fitted on the evaluations so far.
- bucket_by="committed": a child's bucket is the cost its searched layers commit.
- refine="local": budget left after the sweep goes to a refinement pass that evaluates the
  unevaluated feasible one- and two-layer changes of the best candidates, best predicted first.
- prune="dominated" (not the default): a sweep child is not trained when a sibling (a child of the same
  parent in the same step) commits no more cost and beat it by more than one standard error under
  the step's other parents (paired rewards of the same two choices).
- dominated_buckets="drop" (not the default): when a step closes, a bucket's candidate is dropped if a
  better-scored kept candidate can take every completion within the target (unsearched layers at
  their costliest still meet it): under the LayerNAS assumption any completion of the dropped one
  scores lower than the same completion of the other, so its budget is better spent elsewhere.
- speculate="believer": while a sweep step's last children run, idle workers get the next step's
  children of the candidates the step is believed to keep (running ones at their model prediction),
  then refinement picks; a sequential search is unchanged. speculate="hedge" (not the default) also
  hands out the next step's children of the step's other candidates that may still be kept, before
  refinement picks.
- explore=1.0: refinement ranks a neighbour by the model's prediction plus `explore` standard errors
  of the effects of its options (an upper confidence bound), so options the search has seen rarely get tried.
- bonus_counts="all": an option's bonus counts every evaluation that has it, also those outside the
  better share of evaluations the model is fitted on, so an option tried only in poor networks does
  not keep the bonus of one never tried.
- batch_picks="explore": in a parallel search, running candidates count as seen when the bonus is
  computed, and while the sweep runs one speculative pick at a time takes the model's best bet and
  the others the bonus; a sequential search is unchanged.
- replicates=8, replicate_runner_up=True: in refinement, the final pick's leader and runner-up are
  raced while they are within noise of each other, each trained again until it has 8 evaluations,
  so a near-tie is settled by evidence rather than by one lucky evaluation.
- race="expected_loss": a race trial is taken when refinement's pick is worth less than it: the
  pick's expected improvement over the raced candidate (its plain prediction, its exploration bonus
  as the spread) against the expected loss of the final pick between the two (their gap and noise).
- pick="lower": the final pick averages a candidate's reward with the lower of two additive models'
  predictions (fitted on all evaluations and on the better part), so an argmax over many candidates
  does not land where one model extrapolates.
Pure Python: no TensorFlow.
"""

from __future__ import annotations

import heapq
import math
from typing import Dict, List, Optional, Sequence, Tuple

from layernas_tf.search.additive import AdditiveModel
from layernas_tf.search.base import Searcher, Trial
from layernas_tf.search.problem import Encoding, Problem

FILLS = ("cheapest", "default")
SELECTIONS = ("observed", "additive")
REFINES = ("none", "local")
ORDERS = ("forward", "backward")
BUCKET_BYS = ("committed", "total")
STEPS = ("attributes", "layers")
BUCKET_PLANS = ("per_step", "upfront")
PICKS = ("lower", "blend")
PRUNES = ("none", "dominated")
DOMINATED_BUCKETS = ("keep", "drop")
SPECULATES = ("believer", "hedge", "none")
BATCH_PICKS = ("explore", "greedy")
RACES = ("expected_loss", "no_better")
BONUS_COUNTS = ("all", "share")
SELECT_FRACTIONS = (1.0, 0.5, 0.25)  # shares the cross-validated final pick chooses among
SELECT_HELD_OUT = 10  # best feasible evaluations it holds out, one at a time


class LayerNAS(Searcher):
    """LayerNAS searcher.

    Args:
      problem: the search problem (options, cost, target).
      budget: at most this many queries.
      seed: seed (LayerNAS is deterministic; the seed breaks no ties but is kept for replay checks).
      num_buckets: H cost buckets over [cheapest cost, max target]. With H >= 1 the plan does not
        depend on the budget, so a run with a larger budget is the smaller run continued (`anytime`);
        0 picks H from the budget (`bucket_plan`), and each budget is then a different search.
      per_bucket: K candidates kept per bucket.
      fill: what unsearched layers are set to: 'cheapest' option or the problem's 'default'.
      selection: 'observed' (a candidate's own noisy reward, as in the paper) or 'additive'.
      refine: 'none' or 'local' (spend the remaining budget on one-layer changes of the best).
      sweep_share: with refine, the share of the budget the layer sweep may plan for.
      order: 'forward' (input to output) or 'backward'.
      shrinkage: weight of a candidate's own reward in the additive score (1 - weight of the model).
      top_for_refine: how many of the best candidates' neighbourhoods refinement pools.
      model_fraction: the better share of evaluations the search-time additive model is fitted on.
      refine_radius: refinement proposes changes of up to this many layers.
      bucket_by: 'committed' (cost with unsearched layers at their cheapest) or 'total' (the child's cost).
      select_fraction: the better share of evaluations the model for the final pick is fitted on; 0
        chooses it among SELECT_FRACTIONS by how well each model predicts the best candidates held out.
      pick: how the final pick uses the models: 'lower' (a candidate's own reward averaged with the
        lower of two predictions, the select_fraction model's and the search-time model's) or 'blend'
        (its own reward averaged with the select_fraction model's prediction).
      steps: 'attributes' (a layer whose options have attributes, `Problem.option_attributes`, is
        searched one attribute at a time: width, then kernel, ...; each step varies one attribute of
        the kept candidates, so a step has 2-3 children per parent instead of 6-12) or 'layers' (one
        step per layer, every option).
      bucket_plan: with num_buckets=0, 'per_step' (H is chosen when a step closes, from the sweep
        budget left and the children the remaining steps can spawn at most) or 'upfront' (one H for
        the whole sweep, from its worst case at the start).
      prune: 'none' or 'dominated' (a sweep child is skipped at hand-out when a sibling, a child of
        the same parent in the same step, commits no more cost and beat it by more than one standard
        error under the step's other kept parents; the budget it saves goes to later steps' buckets
        and to refinement).
      dominated_buckets: 'keep' or 'drop' (when a step closes, drop a bucket's candidate if a
        better-scored kept candidate meets the target with every unsearched layer, and every open
        attribute of its layer, at its costliest: the cheaper candidate's saving buys nothing the
        other cannot already reach).
      speculate: 'believer', 'hedge' or 'none'. With 'believer', a worker that would wait for a sweep
        step's last children gets a trial instead: running children are believed to score their
        additive-model prediction, the step is closed on that belief, and the next step's children of
        the believed keepers are handed out, then the refinement's best pick. 'hedge' hands out, before
        the refinement's pick, the next step's children of the step's other candidates that are
        believed within one standard deviation of a pending score of their bucket's keeper
        (`_hedges`). A sequential search never speculates (nothing is running when it asks), so its
        trials are unchanged; a parallel one keeps its workers busy, and a speculated child that the
        real step keeps is not trained again.
      explore: standard errors of bonus per option effect when refinement ranks untried neighbours
        (`_refinement_model`); 0 ranks by the prediction alone. Picks made while the sweep runs
        (speculation) take no bonus unless batch_picks='explore'.
      batch_picks: how picks made while other trials run use the bonus. 'explore': a running
        candidate's options count as seen (the bonus shrinks, the prediction does not: each pick of a
        batch explores somewhere else), and while the sweep runs, one speculative pick at a time is
        the model's best bet (no bonus) and the others take the bonus. 'greedy': running candidates do
        not count, and every speculative pick is the model's best bet. One worker never has
        anything running when it asks, so a sequential search is the same under both.
      replicates: most evaluations of one candidate (default 8). In refinement, before each new
        pick, the candidate the final pick would return, or its runner-up, is evaluated again (a
        fresh training, or a fresh query) while the two are within one standard deviation (the
        model's residual noise, through the weights of their own rewards) and the refinement's own
        pick is worth less (`race`). A candidate's own reward is
        then the mean of its evaluations, weighted in its score as n evaluations are (`score`).
        1: never; a deterministic problem never replicates.
      replicate_runner_up: which of the two is trained again. On (the default): a race, whichever
        has fewer evaluations (the leader on a tie), until both have `replicates`. Off: only the
        leader, and only while it has no more evaluations than the runner-up.
      race: when a race trial is taken instead of refinement's pick. 'expected_loss' (the default):
        when the pick's expected improvement over the raced candidate, E[max(0, r - score)] with r
        ~ N(plain prediction, exploration bonus), is at most the expected loss of the final pick,
        E[max(0, runner-up - leader)] with their difference ~ N(-gap, their noise). 'no_better' (the
        rule before): only once the pick's optimistic prediction is not above the raced score.
      bonus_counts: which evaluations the exploration bonus of an option counts as having seen it.
        'all' (the default): every evaluation that has it. 'share': only those in the better share
        the search-time model is fitted on (`model_fraction`; the rule before). Why: the bonus stands
        for what the search has not measured. An option tried only in poor networks has been
        measured, but they fall outside the share, so under 'share' its bonus stayed that of an
        option never tried, on top of ridge predicting its effect at the share's mean.
    """

    name = "layernas"
    legacy_settings = {"steps": "layers", "bucket_plan": "upfront", "pick": "blend", "prune": "none",
                       "dominated_buckets": "keep", "speculate": "none", "explore": 0.0,
                       "batch_picks": "greedy", "replicates": 1, "replicate_runner_up": False,
                       "race": "no_better", "bonus_counts": "share"}

    def __init__(self, problem: Problem, budget: int, seed: int = 0, num_buckets: int = 1, per_bucket: int = 1,
                 fill: str = "default", selection: str = "additive", refine: str = "local", sweep_share: float = 0.3,
                 order: str = "forward", shrinkage: float = 0.5, top_for_refine: int = 3,
                 model_fraction: float = 0.5, refine_radius: int = 2, bucket_by: str = "committed",
                 select_fraction: float = 1.0, steps: str = "attributes", bucket_plan: str = "per_step",
                 pick: str = "lower", prune: str = "none", dominated_buckets: str = "keep",
                 speculate: str = "believer", explore: float = 1.0, batch_picks: str = "explore",
                 replicates: int = 8, replicate_runner_up: bool = True,
                 race: str = "expected_loss", bonus_counts: str = "all"):
        super().__init__(problem, budget, seed)
        for flag, value, allowed in (("fill", fill, FILLS), ("selection", selection, SELECTIONS),
                                     ("refine", refine, REFINES), ("order", order, ORDERS),
                                     ("bucket_by", bucket_by, BUCKET_BYS), ("steps", steps, STEPS),
                                     ("bucket_plan", bucket_plan, BUCKET_PLANS), ("pick", pick, PICKS),
                                     ("prune", prune, PRUNES),
                                     ("dominated_buckets", dominated_buckets, DOMINATED_BUCKETS),
                                     ("speculate", speculate, SPECULATES), ("batch_picks", batch_picks, BATCH_PICKS),
                                     ("race", race, RACES), ("bonus_counts", bonus_counts, BONUS_COUNTS)):
            if value not in allowed:
                raise ValueError(f"layernas {flag}={value!r} is not allowed; choose one of {', '.join(allowed)}")
        if per_bucket < 1 or num_buckets < 0:
            raise ValueError(f"layernas needs per_bucket >= 1 and num_buckets >= 0, got {per_bucket}, {num_buckets}")
        for flag, value in (("sweep_share", sweep_share), ("shrinkage", shrinkage),
                            ("model_fraction", model_fraction)):
            if not 0 < value <= 1:
                raise ValueError(f"layernas {flag} must be in (0, 1], got {value}")
        if not 0 <= select_fraction <= 1:
            raise ValueError(f"layernas select_fraction must be in [0, 1] (0: cross-validated), got {select_fraction}")
        if not 0 <= explore <= 10:
            raise ValueError(f"layernas explore must be in [0, 10] (standard errors; 0: no bonus), got {explore}")
        if replicates < 1:
            raise ValueError(f"layernas replicates must be >= 1 (evaluations of one candidate; 1: never again), "
                             f"got {replicates}")
        if top_for_refine < 1 or refine_radius < 1:
            raise ValueError(f"layernas needs top_for_refine >= 1 and refine_radius >= 1, "
                             f"got {top_for_refine}, {refine_radius}")
        self.per_bucket = per_bucket
        self.fill = fill
        self.selection = selection
        self.refine = refine
        self.sweep_share = sweep_share
        self.order = list(range(problem.num_layers))
        if order == "backward":
            self.order.reverse()
        self.order_name = order
        self.shrinkage = shrinkage
        self.top_for_refine = top_for_refine
        self.refine_radius = refine_radius
        self.bucket_by = bucket_by
        self.select_fraction = select_fraction
        self.steps = steps
        self.bucket_plan = bucket_plan
        self.pick = pick
        self.prune = prune
        self.dominated_buckets = dominated_buckets
        self.speculate = speculate
        self.explore = float(explore)
        self.batch_picks = batch_picks
        self.replicates = int(replicates)
        self.replicate_runner_up = bool(replicate_runner_up)
        self.race = race
        self.bonus_counts = bonus_counts
        self.evaluations: Dict[Encoding, List[float]] = {}  # each candidate's successful rewards, in order
        self._greedy: set = set()  # speculative picks made by the plain model (batch_picks='explore')
        self.speculated: List[Encoding] = []  # sweep trials handed out ahead of their step, in hand-out order
        self._step_set: set = set()  # the current step's children (queued, running or told)
        self.dropped: List[Encoding] = []  # kept candidates dropped as dominated when their step closed
        self.pruned: List[Encoding] = []  # sweep children skipped as dominated, in hand-out order
        self._parent: Dict[Encoding, Encoding] = {}  # sweep child -> the parent that spawned it
        # The sweep's steps: (layer, attribute) with attribute None for a step over all options.
        self.plan = []
        for layer in self.order:
            names = problem.attribute_names(layer) if steps == "attributes" else ()
            self.plan += [(layer, a) for a in names] if len(names) > 1 else [(layer, None)]
        self.step_sizes = [self._step_size(step) for step in self.plan]
        self.sweep_budget = budget if refine == "none" else max(1, int(budget * sweep_share))
        self.configured_buckets = num_buckets
        # Whether a run with a larger budget is this run continued: the plan is fixed by the problem alone.
        self.anytime = num_buckets > 0
        if num_buckets:
            self.num_buckets = num_buckets
        elif bucket_plan == "upfront":
            self.num_buckets = buckets_for_budget(self.step_sizes, self.sweep_budget, per_bucket)
        else:
            self.num_buckets = self._buckets_after(-1)
        self.bucket_history: List[int] = []
        self._sweep_asked = 0
        self.low_cost = problem.cost_of(problem.cheapest)
        self.model_fraction = model_fraction
        self._models: Dict[tuple, AdditiveModel] = {}
        self._chosen_fraction: Optional[tuple] = None
        self.rewards: Dict[Encoding, Optional[float]] = {}
        root = problem.cheapest if fill == "cheapest" else problem.default
        self.position = 0  # index into self.plan of the step being searched
        self.kept: List[Encoding] = [tuple(root)]
        self.queue: List[Encoding] = []
        self.layer_children: List[Encoding] = []
        self.phase = "sweep"
        self._start_layer()

    def get_state(self) -> dict:
        """The base state, plus `sweep_trials`: how many of the first hand-outs the sweep made (the rest
        are the refinement's)."""
        return {**super().get_state(), "sweep_trials": self._sweep_asked}

    def settings(self) -> dict:
        num_buckets = self.num_buckets if self.bucket_plan == "upfront" else self.configured_buckets
        return {"num_buckets": num_buckets, "per_bucket": self.per_bucket, "fill": self.fill,
                "selection": self.selection, "refine": self.refine, "sweep_share": self.sweep_share,
                "order": self.order_name, "shrinkage": self.shrinkage, "top_for_refine": self.top_for_refine,
                "model_fraction": self.model_fraction, "refine_radius": self.refine_radius,
                "bucket_by": self.bucket_by, "select_fraction": self.select_fraction, "steps": self.steps,
                "bucket_plan": self.bucket_plan, "pick": self.pick, "prune": self.prune,
                "dominated_buckets": self.dominated_buckets, "speculate": self.speculate,
                "explore": self.explore, "batch_picks": self.batch_picks, "replicates": self.replicates,
                "replicate_runner_up": self.replicate_runner_up, "race": self.race,
                "bonus_counts": self.bonus_counts}

    # -- scoring ------------------------------------------------------------------------------
    def _fitted_model(self, fraction: float) -> AdditiveModel:
        """The additive model fitted on the better `fraction` of the evaluations (cached per trial count)."""
        key = (fraction, len(self.trials))
        if key not in self._models:
            self._models = {k: m for k, m in self._models.items() if k[1] == len(self.trials)}
            self._models[key] = AdditiveModel(self.problem.num_options).fit(self._better_share(fraction)[0])
        return self._models[key]

    def _better_share(self, fraction: float) -> Tuple[List[Tuple[Encoding, float]], List[Encoding]]:
        """The evaluations (encoding, reward) a model fitted on the better `fraction` of them takes
        (at least twice as many as there are options), best first; and the encodings of the rest."""
        observed = sorted(((e, r) for e, r in self.rewards.items() if r is not None), key=lambda o: (-o[1], o[0]))
        keep = max(2 * sum(self.problem.num_options), int(len(observed) * fraction))
        return observed[:keep], [e for e, _ in observed[keep:]]

    def _refinement_model(self, running: Sequence[Encoding] = ()) -> AdditiveModel:
        """The model refinement ranks unevaluated candidates by: the search-time model (`predict`) with
        each option's effect raised by `explore` standard errors, sd / sqrt(n + ridge) for an option
        seen in n evaluations (sd: its residual noise; n counts every evaluation, or with
        bonus_counts='share' those the model was fitted on). With
        batch_picks='explore', the `running` candidates' options count as seen too
        (`AdditiveModel.with_bonus`).

        Why: ridge shrinks an option seen rarely towards the mean, so once the best candidates sit on
        options better than average, a neighbour with an untried option is predicted below one that
        recombines tried ones, and refinement circles one region. The bonus is largest where the model
        knows least and fades as an option is seen, an upper confidence bound per effect. The bonus is
        additive per option, so the best-first neighbour search stays exact.
        """
        model = self._fitted_model(self.model_fraction)
        if self.explore <= 0:
            return model
        noise = model.noise_sd()
        scale = self.explore * (0.0 if noise == float("inf") else noise)
        key = ("explore", len(self.trials))
        batch = bool(running) and self.batch_picks == "explore"
        if batch or key not in self._models:
            # With bonus_counts='all', the evaluations outside the share count as seen, as running ones do.
            outside = self._better_share(self.model_fraction)[1] if self.bonus_counts == "all" else []
            if batch:
                return model.with_bonus(scale, sorted(running) + outside)
            self._models[key] = model.with_bonus(scale, outside)
        return self._models[key]

    def predict(self, encoding: Encoding) -> float:
        """Predicted reward for refinement: the model fitted on the better `model_fraction` of evaluations.

        Fitting on the better part keeps it local: whole spaces are far from additive (a network
        of skips collapses), the region where the answer lies much less so.
        """
        return self._fitted_model(self.model_fraction).predict(encoding)

    def score(self, encoding: Encoding, *fractions: float) -> float:
        """Noise-aware score of an evaluated candidate: its reward, or its blend with the prediction of
        the additive model fitted on the better `fraction` of evaluations (default `model_fraction`);
        given several fractions, the lowest of their models' predictions.

        The model averages the noise of many evaluations; search ranks with the local model, the
        final pick (`best`) with the model fitted on every evaluation, whose estimates are the least noisy.
        """
        reward = self.rewards.get(encoding)
        if reward is None:
            return float("-inf")
        if self.selection == "observed" or len(self.trials) < 2:
            return reward
        prediction = min(self._fitted_model(f).predict(encoding) for f in set(fractions or (self.model_fraction,)))
        weight = self._own_weight(encoding)
        return weight * reward + (1 - weight) * prediction

    def _own_weight(self, encoding: Encoding) -> float:
        """The weight of a candidate's own reward in its score: `shrinkage` for one evaluation; for the
        mean of n, n*s / (n*s + 1 - s), the weight a prior and n noisy observations give the
        observations when one observation earns weight s."""
        n, s = max(1, len(self.evaluations.get(encoding, ()))), self.shrinkage
        return n * s / (n * s + 1 - s)

    def selection_score(self, encoding: Sequence[int]) -> float:
        """The noise-aware score of the final pick: `score` with the model fitted on the better
        `select_fraction` of the evaluations (`chosen_select_fraction` when it is 0); with
        pick='lower', the prediction in that score is the lower of that model's and the search-time
        (`model_fraction`) model's.

        Why the lower: the pick is an argmax over every evaluation, so it lands where a model is most
        optimistic. An additive model fitted on all evaluations averages the most noise, but where the
        space is far from additive (NAS-Bench-Macro's skips) it extrapolates the best options of each
        layer into combinations it over-predicts by more than a point; the model fitted on the better
        part is local there, but over-predicts elsewhere. Where the two agree the pick is unchanged;
        where they disagree nothing says which is right, and the pessimistic one is the safe bet for
        an argmax (a lower confidence bound over the two models).

        On a deterministic problem (`Problem.deterministic`) a candidate's own reward is exact, and the
        pick is the best of them. A model there has no noise to average, only its misfit to add: a
        refinement candidate it over-predicts can edge out a better-measured one, and the pick changes
        its mind as the model is refitted. The best exact reward of a growing set of evaluations never
        falls. The search itself still ranks by `score`.
        """
        if self.problem.deterministic:
            reward = self.rewards.get(tuple(encoding))
            return float("-inf") if reward is None else reward
        fraction = self.chosen_select_fraction()
        if self.pick == "blend":
            return self.score(tuple(encoding), fraction)
        return self.score(tuple(encoding), fraction, self.model_fraction)

    def chosen_select_fraction(self) -> float:
        """The share of evaluations the final pick's model is fitted on.

        With select_fraction=0: for each share in SELECT_FRACTIONS, each of the SELECT_HELD_OUT best
        feasible evaluations is left out in turn, the model is fitted on that share of the others and
        predicts it; the share with the least squared error wins (ties: the larger share). The model
        that pools every evaluation averages the most noise, but where the space is far from additive it
        is biased exactly among the best candidates; a model fitted on the better part is local there.
        Which holds is a property of the space and the target, so it is measured, not assumed.
        """
        if self.select_fraction > 0:
            return self.select_fraction
        key = len(self.trials)
        if self._chosen_fraction is not None and self._chosen_fraction[0] == key:
            return self._chosen_fraction[1]
        observed = sorted(((e, r) for e, r in self.rewards.items() if r is not None), key=lambda o: (-o[1], o[0]))
        held_out = [o for o in observed if self.problem.feasible(o[0])][:SELECT_HELD_OUT]
        size = sum(self.problem.num_options)
        errors = {}
        if len(held_out) >= 3:
            for fraction in SELECT_FRACTIONS:
                error = 0.0
                for encoding, reward in held_out:
                    rest = [o for o in observed if o[0] != encoding]
                    keep = max(2 * size, int(len(rest) * fraction))
                    model = AdditiveModel(self.problem.num_options).fit(rest[:keep])
                    error += (model.predict(encoding) - reward) ** 2
                errors[fraction] = error
        chosen = min(errors, key=lambda f: (errors[f], -f)) if errors else 1.0
        self._chosen_fraction = (key, chosen)
        return chosen

    # -- the layer sweep ----------------------------------------------------------------------
    def _step_size(self, step) -> int:
        """Children per parent of a sweep step: the layer's options, or the values of one attribute."""
        layer, attribute = step
        if attribute is None:
            return self.problem.num_options[layer]
        return len({dict(o)[attribute] for o in self.problem.option_attributes[layer]})

    def _buckets_after(self, position: int) -> int:
        """H for the candidates kept when step `position` closes: the most buckets whose worst case
        (H*K parents, each spawning every child of every later step) fits the sweep budget left."""
        if self.configured_buckets:
            return self.configured_buckets
        if self.bucket_plan == "upfront":
            return self.num_buckets
        future = sum(n - 1 for n in self.step_sizes[position + 1:])
        left = self.sweep_budget - self._sweep_asked if position >= 0 else self.sweep_budget
        return max(1, min(10_000, left // max(1, self.per_bucket * future))) if future else 1

    def _free_layers(self) -> List[int]:
        """Layers not searched yet."""
        layer = self.plan[self.position][0]
        return self.order[self.order.index(layer) + 1:]

    def _open_options(self, encoding: Encoding) -> List[int]:
        """Options the current step's layer may still take: those that agree with `encoding` on the
        attributes already searched (the attributes of later steps of this layer are still open)."""
        layer, attribute = self.plan[self.position]
        if attribute is None:
            return [encoding[layer]]
        names = self.problem.attribute_names(layer)
        still_open = names[names.index(attribute) + 1:]
        return [o for o in range(self.problem.num_options[layer])
                if self.problem.same_except(layer, o, encoding[layer], still_open)]

    def _with_option(self, encoding: Encoding, option: int) -> Encoding:
        layer = self.plan[self.position][0]
        return encoding[:layer] + (option,) + encoding[layer + 1:]

    def _committed_cost(self, encoding: Encoding) -> float:
        """Cost with the unsearched layers, and the unsearched attributes of this step's layer, at
        their cheapest: what the searched choices already spend."""
        free = self._free_layers()
        return min(self.problem.committed_cost(self._with_option(encoding, o), free)
                   for o in self._open_options(encoding))

    def _completable(self, encoding: Encoding) -> bool:
        free = self._free_layers()
        return any(self.problem.completable(self._with_option(encoding, o), free) for o in self._open_options(encoding))

    def _step_children(self, parent: Encoding) -> List[Encoding]:
        layer, attribute = self.plan[self.position]
        options = range(self.problem.num_options[layer])
        if attribute is not None:
            options = [o for o in options if self.problem.same_except(layer, o, parent[layer], (attribute,))]
        return [parent[:layer] + (option,) + parent[layer + 1:] for option in options]

    def _spawn(self, parents: Sequence[Encoding]) -> Dict[Encoding, Encoding]:
        """The current step's completable children of `parents`, each with the parent that spawned it."""
        spawned: Dict[Encoding, Encoding] = {}
        for parent in parents:
            for child in self._step_children(parent):
                if child not in spawned and self._completable(child):
                    spawned[child] = parent
        return spawned

    def _start_layer(self) -> None:
        self.queue, self.layer_children = [], []
        self._parent = self._spawn(self.kept)
        self._step_set = set(self._parent)
        for child in self._parent:
            if child in self.rewards:
                self.layer_children.append(child)
            elif child not in self.pending:  # a speculated child still running joins when it is told
                self.queue.append(child)

    def _step_value(self, option: int):
        """What the current step varies about `option` of its layer: the option, or its step attribute."""
        layer, attribute = self.plan[self.position]
        return option if attribute is None else dict(self.problem.option_attributes[layer][option])[attribute]

    def _dominated(self, child: Encoding) -> bool:
        """Whether a sibling of `child` (a completable child of its parent in this step) commits no more
        cost and beats it by more than one standard error on the evidence of this step so far.

        The evidence is paired: for every other kept parent whose two children with the step values of
        the sibling and of `child` (the same option, or the same value of the step's attribute) have
        both been told, the difference of their rewards. Under the LayerNAS assumption (a layer's
        effect does not depend on the others) their mean d estimates the sibling's gain; it must exceed
        sd * sqrt(2 / m) for m pairs, sd the residual noise of the additive model fitted on every
        evaluation (misfit counts as noise there, so the test errs towards training). Direct pairs are
        used rather than the model's effects, since ridge shrinks a rarely seen option towards 0 and
        not towards its layer's common option, which would make new options look worse than the default.
        """
        layer = self.plan[self.position][0]
        parent = self._parent[child]
        mine = self._step_value(child[layer])
        others = {}  # step value -> reward, per other kept parent
        for kept in self.kept:
            if kept != parent:
                others[kept] = {self._step_value(c[layer]): self.rewards.get(c) for c in self._step_children(kept)}
        noise, cost = None, None
        for sibling in self._step_children(parent):
            theirs = self._step_value(sibling[layer])
            pairs = [told[theirs] - told[mine] for told in others.values()
                     if told.get(theirs) is not None and told.get(mine) is not None]
            if sibling == child or not pairs or sum(pairs) <= 0:
                continue
            if noise is None:
                noise, cost = self._fitted_model(1.0).noise_sd(), self._committed_cost(child)
            if sum(pairs) / len(pairs) > noise * (2 / len(pairs)) ** 0.5 \
                    and self._committed_cost(sibling) <= cost and self._completable(sibling):
                return True
        return False

    def _next_child(self) -> Optional[Encoding]:
        """The next sweep child to hand out (None when the queue is empty); with prune='dominated',
        dominated children are skipped and recorded in `pruned`. The test uses the results told so far
        only, so a replayed log (which tells them in the recorded order) prunes the same children."""
        while self.queue:
            child = self.queue.pop(0)
            if self.prune == "dominated" and self.selection == "additive" and self._dominated(child):
                self.pruned.append(child)
                continue
            return child
        return None

    def _bucket_of(self, encoding: Encoding) -> int:
        """The cost bucket of a step's candidate (by its committed or its total cost, `bucket_by`)."""
        key = self._committed_cost(encoding) if self.bucket_by == "committed" else self.problem.cost_of(encoding)
        return self._bucket(key)

    def _bucket(self, cost: float) -> int:
        span = self.problem.max_cost - self.low_cost
        if span <= 0:
            return 0
        index = int((cost - self.low_cost) / span * self.num_buckets)
        return min(max(index, 0), self.num_buckets - 1)

    def _keep_best_per_bucket(self, candidates: Sequence[Encoding], believed: Optional[Dict[Encoding, float]] = None
                              ) -> List[Encoding]:
        """The best `per_bucket` candidates of each cost bucket, ranked by score (or by `believed`
        scores, which also stand in for results still running: a speculative close, which records nothing)."""
        if believed is None:
            scores = {c: self.score(c) for c in candidates if self.rewards.get(c) is not None}
        else:
            scores = {c: believed[c] for c in candidates if c in believed}

        def ranked(group):
            return sorted(group, key=lambda c: (-scores[c], c))

        buckets: Dict[int, List[Encoding]] = {}
        for c in scores:
            buckets.setdefault(self._bucket_of(c), []).append(c)
        kept = []
        for index in sorted(buckets):
            kept.extend(ranked(buckets[index])[: self.per_bucket])
        if self.dominated_buckets == "drop":
            unconstrained = False  # whether a better-scored candidate kept so far takes every completion
            useful = set()
            for candidate in ranked(kept):
                if unconstrained:
                    if believed is None:
                        self.dropped.append(candidate)
                    continue
                useful.add(candidate)
                unconstrained = self._unconstrained(candidate)
            kept = [c for c in kept if c in useful]
        return kept

    def _unconstrained(self, encoding: Encoding) -> bool:
        """Whether every completion of `encoding` (the unsearched layers, and the open attributes of
        this step's layer, set any way) meets the target: at their costliest and at their cheapest."""
        free = self._free_layers()
        return all(self.problem.feasible(self.problem.filled(self._with_option(encoding, o), free, extreme))
                   for o in self._open_options(encoding)
                   for extreme in (self.problem.costliest, self.problem.cheapest))

    def _step_running(self) -> bool:
        return any(p in self._step_set for p in self.pending)

    def _advance(self) -> None:
        """Close the current layer once all its children are told; move to the next or refine."""
        while self.phase == "sweep" and not self.queue and not self._step_running():
            self.num_buckets = self._buckets_after(self.position)
            self.bucket_history.append(self.num_buckets)
            kept = self._keep_best_per_bucket(self.layer_children)
            self.kept = kept or self.kept
            self.position += 1
            if self.position >= len(self.plan):
                self.phase = "refine" if self.refine != "none" else "finished"
                return
            self._start_layer()

    # -- refinement ---------------------------------------------------------------------------
    def _neighbours(self, base: Encoding) -> List[Encoding]:
        """Encodings that differ from `base` in 1..refine_radius layers."""
        frontier, seen = [base], {base}
        for _ in range(self.refine_radius):
            nxt = []
            for enc in frontier:
                for layer, n in enumerate(self.problem.num_options):
                    for option in range(n):
                        c = enc[:layer] + (option,) + enc[layer + 1:]
                        if c not in seen:
                            seen.add(c)
                            nxt.append(c)
            frontier = nxt
        seen.discard(base)
        return list(seen)

    def _best_refinement(self, batch: Sequence[Encoding] = (),
                         explore: bool = True) -> Tuple[Optional[Encoding], AdditiveModel]:
        """The best-predicted unevaluated feasible neighbour of the best candidates (ties: smallest
        encoding), or None; and the model that predicted it, for callers that weigh the pick.

        Neighbours differ in up to `refine_radius` layers: two-layer moves can trade cost between
        layers, which one-layer moves at the target boundary cannot. The neighbourhoods of the
        `top_for_refine` best-scored candidates that still have any are pooled, so the pass moves
        down the ranking once the best candidates' neighbourhoods are exhausted.
        """
        evaluated = [e for e, r in self.rewards.items() if r is not None and self.problem.feasible(e)]
        running = set(self.pending) | set(batch)
        model = self._refinement_model(running) if explore else self._fitted_model(self.model_fraction)
        scores = {e: self.score(e) for e in evaluated}
        # Believer: a pending candidate is ranked as a base at its predicted reward, so a batch also
        # explores around what is still running, as a sequential search would once it came back.
        scores.update({e: model.predict(e) for e in running if e not in scores and self.problem.feasible(e)})

        def valid(c):
            return c not in self.rewards and c not in running and self.problem.feasible(c)

        best, bases = None, 0
        for base in sorted(scores, key=lambda c: (-scores[c], c)):
            found = self._best_neighbour(base, model, valid)
            if found is None:
                continue
            bases += 1
            if best is None or (-found[0], found[1]) < (-best[0], best[1]):
                best = found
            if bases >= self.top_for_refine:
                break
        return (None if best is None else best[1]), model

    def _best_neighbour(self, base: Encoding, model: AdditiveModel, valid) -> Optional[tuple]:
        """(predicted reward, encoding) of the best-predicted `valid` neighbour of `base`, or None.

        With the additive model a neighbour's prediction is the base's plus the effect changes of
        its moved layers, so neighbours are visited best-first (by the sum of their effect changes)
        and the search stops once no unvisited one can reach the best valid prediction found: the
        answer of scoring every neighbour, at a small share of the cost. Neighbours that cannot meet
        the target are skipped unvisited only where that is certain: a move that alone exceeds it;
        and, when the problem's cost is pairwise (`Problem.pairwise_cost`, where moves on layers two
        or more apart change the cost by the sum of their own changes), such a move with a move on a
        non-adjacent layer that does not lower the cost.
        """
        if self.refine_radius > 2:
            found = [c for c in self._neighbours(base) if valid(c)]
            predicted = {c: model.predict(c) for c in found}
            top = min(predicted, key=lambda c: (-predicted[c], c), default=None)
            return None if top is None else (predicted[top], top)
        effects, problem = model.effects, self.problem
        base_cost = problem.cost_of(base)
        moves = []  # (effect change, layer, option, cost change, alone over the target)
        for layer, n in enumerate(problem.num_options):
            for option in range(n):
                if option != base[layer]:
                    moved = base[:layer] + (option,) + base[layer + 1:]
                    cost = problem.cost_of(moved)
                    moves.append((effects[layer][option] - effects[layer][base[layer]], layer, option,
                                  cost - base_cost, cost > problem.max_cost))
        moves.sort(key=lambda m: -m[0])
        # Streams, each sorted best-first: ("one", moves) single moves; ("sym", moves) pairs i < j of
        # one list; ("product", first, second) pairs across two lists; ("flat", pairs) listed pairs.
        streams: list = [("one", [m for m in moves if not m[4]])]
        if self.refine_radius >= 2:
            if problem.pairwise_cost:
                lowering = [m for m in moves if m[3] < 0]
                raising = [m for m in moves if m[3] >= 0 and not m[4]]
                # Pairs without a lowering move that have a move over the target alone: only those on
                # adjacent layers can meet it (their cost terms share a layer).
                by_layer: Dict[int, list] = {}
                for m in moves:
                    if m[3] >= 0:
                        by_layer.setdefault(m[1], []).append(m)
                adjacent = sorted(((a[0] + b[0], a, b) for layer, firsts in by_layer.items()
                                   for a in firsts for b in by_layer.get(layer + 1, ()) if a[4] or b[4]),
                                  key=lambda t: -t[0])
                streams += [("product", moves, lowering), ("sym", raising), ("flat", adjacent)]
            else:
                streams.append(("sym", moves))
        base_prediction = model.predict(base)
        margin = 1e-9 * (1.0 + abs(base_prediction))  # the bound and the prediction differ by rounding only
        heap, pushed = [], set()

        def pair_at(stream, i, j):
            """The moves of item (i, j) of `stream`, or None past its end."""
            kind, first, second = (streams[stream] + (None,))[:3]
            if kind in ("one", "flat"):
                if i >= len(first):
                    return None
                return (first[i],) if kind == "one" else first[i][1:]
            if kind == "sym":
                return (first[i], first[j]) if j < len(first) and i < j else None
            return (first[i], second[j]) if i < len(first) and j < len(second) else None

        def push(stream, i, j):
            if (stream, i, j) in pushed:
                return
            item = pair_at(stream, i, j)
            if item is not None:
                pushed.add((stream, i, j))
                heapq.heappush(heap, (-(base_prediction + sum(m[0] for m in item)), stream, i, j))

        for stream, spec in enumerate(streams):
            push(stream, 0, 1 if spec[0] == "sym" else 0)
        best = None
        while heap:
            negative_bound, stream, i, j = heapq.heappop(heap)
            if best is not None and -negative_bound < best[0] - margin:
                break
            if streams[stream][0] in ("one", "flat"):
                push(stream, i + 1, j)
            else:
                push(stream, i, j + 1)
                push(stream, i + 1, j)
            item = pair_at(stream, i, j)
            if len(item) == 2 and item[0][1] == item[1][1]:
                continue  # two options of one layer: not a neighbour
            candidate = list(base)
            for _, layer, option, _, _ in item:
                candidate[layer] = option
            candidate = tuple(candidate)
            if not valid(candidate):
                continue
            prediction = model.predict(candidate)
            if best is None or (-prediction, candidate) < (-best[0], best[1]):
                best = (prediction, candidate)
        return best

    # -- ask / tell hooks ---------------------------------------------------------------------
    def _feasible_fallback(self, batch: Sequence[Encoding] = ()) -> Optional[Encoding]:
        """A feasible candidate when none has been evaluated, is running or is in `batch`: the default with its
        layers, last searched first, moved to their cheapest options until it meets the target. It
        depends on no result, so replay (one ask at a time) matches a batched run. It is the first
        trial when no child of the sweep's first step meets the target (so a feasible answer exists
        from the first result on, whatever the budget), and the budget's last when nothing feasible
        has come back."""
        if any(self.problem.feasible(e) for e in list(self.rewards) + self.pending + list(batch)):
            return None
        candidate = list(self.problem.default)
        for layer in reversed(self.order):
            if self.problem.feasible(candidate):
                break
            candidate[layer] = self.problem.cheapest[layer]
        candidate = tuple(candidate)
        return candidate if self.problem.feasible(candidate) and candidate not in self.rewards else None

    def _take_fallback(self, out: List[Encoding]) -> bool:
        """Append the feasible fallback to `out` (taking it off the sweep's queue); False when there is none."""
        fallback = self._feasible_fallback(out)
        if fallback is None:
            return False
        self.queue = [c for c in self.queue if c != fallback]
        out.append(fallback)
        return True

    def _propose(self, n: int) -> List[Encoding]:
        out: List[Encoding] = []
        self._advance()  # a layer whose children were all evaluated before is closed at once
        if self.phase == "sweep":
            if not self.trials and not self.pending and not any(self.problem.feasible(c) for c in self.queue):
                self._take_fallback(out)
            last_batch = n >= self.budget - len(self.trials) - len(self.pending)
            while len(out) < (n - 1 if last_batch else n):
                child = self._next_child()
                if child is None:
                    break
                out.append(child)
            if last_batch and len(out) < n:
                # The batch that ends the budget: never end without a feasible answer.
                if not self._take_fallback(out):
                    child = self._next_child()
                    if child is not None:
                        out.append(child)
            self._sweep_asked += len(out)
            if self.speculate != "none" and not self.queue:
                while len(out) < n:
                    child = self._speculative_child(out)
                    if child is None:
                        break
                    self.speculated.append(child)
                    out.append(child)
                    self._sweep_asked += 1  # counted per pick, as n asks of one would
            if not out and not self.queue and not self._step_running():
                self._advance()  # the step's last children were pruned: close it and go on
                return self._propose(n)
            return out
        if self.phase == "refine":
            # A batch is n sequential picks: each the best-predicted unevaluated neighbour that is not
            # running, where running candidates (earlier picks of the batch too) count as bases at their
            # predicted reward. So ask(n) equals n asks of one, and replay (one ask at a time) rebuilds
            # any batched run exactly. The model is fitted once per told result, not per pick.
            while len(out) < n:
                (candidate, model), (again, loss) = self._best_refinement(out), self._replicate(out)
                if again is not None and (candidate is None or self._gain(candidate, model, again) <= loss):
                    candidate = again
                if candidate is None:
                    break
                out.append(candidate)
            if not out and not self.pending:
                self.phase = "finished"
            return out
        return out

    @property
    def repeats_are_replicates(self) -> bool:
        """LayerNAS proposes an evaluated candidate again only to evaluate it again (`replicates`)."""
        return self.replicates > 1

    def _replicate(self, batch: Sequence[Encoding] = ()) -> Tuple[Optional[Encoding], float]:
        """(The candidate the final pick would return, or its runner-up, to be evaluated again, or None;
        the expected loss of the final pick between the two.)

        Why: the final pick is an argmax over noisy evaluations, and the more candidates it sees the
        likelier it returns a lucky one (on NAS-Bench-Macro at 25%, the runner-up network, 0.22 points
        below the best, has one seed at 88.91 against the best's 88.67-88.76; a run that draws it
        returns it, and more budget means more such draws). Only evidence settles a near-tie: while
        the leader is not ahead of the runner-up by one standard deviation of their scores' noise,
        the one with fewer evaluations (the leader on a tie) is trained again: a race of the two
        (with replicate_runner_up off, only the leader, while it has no more evaluations). The race
        goes on to `replicates` evaluations each: a race stopped at three decides on three draws,
        and on that table the lucky runner-up still wins one time in three (measured in
        docs/search_engine.md). The trials go to what the search would return. The expected loss is
        0.0 with race='no_better' and where there is no race; `_propose` takes
        the race trial only when refinement's pick is worth no more (`_gain`). The refinement's
        optimistic prediction is nearly always above the leader, though its plain prediction is most
        often below: on Channel-Bench at 50%, with race='no_better', a run had made 0.1 race trials
        on average by 100 queries, when its pick was 0.10 points below the best network it had
        evaluated (docs/search_engine.md).
        """
        if self.replicates < 2 or self.problem.deterministic or self.selection != "additive":
            return None, 0.0
        evaluated = [e for e, r in self.rewards.items() if r is not None and self.problem.feasible(e)]
        if len(evaluated) < 2:
            return None, 0.0
        leader, runner_up = sorted(evaluated, key=lambda e: (-self.selection_score(e), e))[:2]
        n_leader, n_runner_up = len(self.evaluations[leader]), len(self.evaluations[runner_up])
        target, n_target = leader, n_leader
        if n_leader > n_runner_up:
            if not self.replicate_runner_up:
                return None, 0.0
            target, n_target = runner_up, n_runner_up
        if target in self.pending or target in batch or n_target >= self.replicates:
            return None, 0.0
        noise = self._fitted_model(1.0).noise_sd()
        if noise == float("inf"):
            return None, 0.0
        spread = noise * (self._own_weight(leader) ** 2 / n_leader
                          + self._own_weight(runner_up) ** 2 / n_runner_up) ** 0.5
        gap = self.selection_score(leader) - self.selection_score(runner_up)
        if gap >= spread:
            return None, 0.0
        if self.race == "no_better":
            return target, 0.0
        return target, expected_excess(-gap, spread)  # the pick's expected loss: E[max(0, runner-up - leader)]

    def _gain(self, candidate: Encoding, model: AdditiveModel, again: Encoding) -> float:
        """What refinement's pick is worth against training `again` once more. 'no_better': its
        optimistic prediction above `again`'s score. 'expected_loss': its expected improvement,
        E[max(0, reward - score)], with the reward ~ N(plain prediction, its exploration bonus)."""
        optimistic = model.predict(candidate)
        if self.race == "no_better":
            return optimistic - self.score(again)
        plain = self._fitted_model(self.model_fraction).predict(candidate)
        return expected_excess(plain - self.score(again), max(0.0, optimistic - plain))

    def _speculative_child(self, batch: Sequence[Encoding]) -> Optional[Encoding]:
        """A trial for a worker that would wait on the current step's running children, or None (wait).

        Running candidates (pending, and earlier picks of `batch`) are believed to score their prediction
        by the search-time additive model; told ones score as usual. The current step is closed on that
        belief, and the answer is the first child of the next step's believed keepers that is neither
        told nor running; failing that (all running, or this is the last step), the refinement's best
        pick, which already ranks running candidates at their prediction. Nothing deeper: a step closed
        on belief is often closed wrongly, and children two steps ahead of a wrong belief are trials
        no sequential search would run. It depends only on what was told and what is running, so replay
        (one ask at a time, in the recorded interleaving) rebuilds it.
        """
        if self.selection != "additive" or sum(r is not None for r in self.rewards.values()) < 2:
            return None
        running = set(self.pending) | set(batch)
        model = self._fitted_model(self.model_fraction)
        believed = {c: self.score(c) if self.rewards.get(c) is not None else model.predict(c)
                    for c in self._parent if self.rewards.get(c) is not None or c in running}
        position, num_buckets = self.position, self.num_buckets
        try:
            self.num_buckets = self._buckets_after(position)
            kept = self._keep_best_per_bucket(list(self._parent), believed) or self.kept
            last = position + 1 >= len(self.plan)
            hedges = self._hedges(kept, believed, model) if self.speculate == "hedge" and not last else []
            self.position = position + 1
            if not last:
                for group in [kept] + [[c] for c in hedges]:
                    for child in self._spawn(group):
                        if child not in self.rewards and child not in running:
                            return child
        finally:
            self.position, self.num_buckets = position, num_buckets
        if self.refine == "none":
            return None
        # The sweep explores the layers one at a time; an idle worker's pick either takes the model's
        # best bet or explores elsewhere. With batch_picks='explore' one best bet runs at a time and
        # the other idle workers explore (with running candidates counted as seen); with 'greedy' all
        # take the best bet, which on a long sweep with many workers leaves no budget for exploring.
        greedy = self.batch_picks == "greedy" or not any(c in self._greedy for c in running)
        pick, _ = self._best_refinement(batch, explore=not greedy)
        if greedy and pick is not None:
            self._greedy.add(pick)
        return pick

    def _hedges(self, kept: Sequence[Encoding], believed: Dict[Encoding, float], model: AdditiveModel
                ) -> List[Encoding]:
        """The step's candidates that its close may still keep instead of the believed keepers, best
        believed first: those not kept whose believed score is within one standard deviation of a
        pending result's score (`shrinkage` x the model's residual noise; unbounded while the model
        cannot estimate its noise) of the lowest keeper of their bucket. A bucket without a keeper
        (dropped as dominated) has none.

        Why: on a short sweep with many workers the believer's idle picks are mostly refinement picks
        from a model fitted on a few results along one path, and the budget can run out before the
        sweep ends. A hedge is a trial of the sweep a different close would run, so whichever way the
        step closes its next step is already under way."""
        noise = model.noise_sd()
        margin = float("inf") if noise == float("inf") else self.shrinkage * noise
        lowest: Dict[int, float] = {}
        for c in kept:
            if c in believed:
                bucket = self._bucket_of(c)
                lowest[bucket] = min(lowest.get(bucket, float("inf")), believed[c])
        hedges = []
        for c in sorted(believed, key=lambda c: (-believed[c], c)):
            keeper = lowest.get(self._bucket_of(c)) if c not in kept else None
            if keeper is not None and keeper - believed[c] < margin:
                hedges.append(c)
        return hedges

    def _observe(self, trial: Trial) -> None:
        again = trial.encoding in self.rewards
        if trial.reward is not None:
            self.evaluations.setdefault(trial.encoding, []).append(trial.reward)
        runs = self.evaluations.get(trial.encoding)
        self.rewards[trial.encoding] = sum(runs) / len(runs) if runs else None
        if again:  # a replicate: the candidate's step bookkeeping was done at its first evaluation
            return
        if self.phase == "sweep":
            if trial.encoding in self._step_set:
                self.layer_children.append(trial.encoding)
            self._advance()


def expected_excess(mean: float, sd: float) -> float:
    """E[max(0, X)] for X ~ N(mean, sd); max(0, mean) when sd is 0."""
    if sd <= 0:
        return max(0.0, mean)
    z = mean / sd
    return sd * math.exp(-z * z / 2) / math.sqrt(2 * math.pi) + mean * 0.5 * math.erfc(-z / math.sqrt(2))


def sweep_upper_bound(num_options: Sequence[int], num_buckets: int, per_bucket: int) -> int:
    """Most queries a sweep with H buckets x K can make: the root, then per step (a layer's options, or
    the values of one of its attributes) parents x (|S|-1)."""
    total, parents = 1, 1
    for n in num_options:
        total += parents * (n - 1)
        parents = min(parents * n, num_buckets * per_bucket)
    return total


def buckets_for_budget(num_options: Sequence[int], budget: int, per_bucket: int = 1) -> int:
    """The largest H whose sweep fits the budget even in the worst case (at least 1)."""
    h = 1
    while sweep_upper_bound(num_options, h + 1, per_bucket) <= budget and h < 10_000:
        h += 1
    return h
