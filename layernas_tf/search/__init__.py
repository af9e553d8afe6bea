"""Searchers over layerwise spaces, in one ask/tell interface. Pure Python: no TensorFlow.

`make_searcher(name, problem, budget, seed, **settings)` builds any of `ALGORITHMS`:
- `layernas`: LayerNAS (layernas.py), the default;
- `random`, `evolution`, `ppo`: constraint-aware baselines (propose only models that meet the target);
- `random_unaware`, `evolution_unaware`, `ppo_unaware`: the same searching by reward alone, with the
  target applied only when the answer is picked (the protocol of NATS-Bench and the LayerNAS paper);
- `optuna_tpe`, `pyglove_evolution`: peer libraries (benchmark extras `pip install -e ".[bench]"`).
"""

from __future__ import annotations

import inspect
from typing import Callable, Dict, Sequence, Tuple

from layernas_tf.search.base import Searcher, Trial
from layernas_tf.search.problem import InfeasibleTargetError, Problem

ALGORITHMS = (
    "layernas", "random", "evolution", "ppo", "random_unaware", "evolution_unaware", "ppo_unaware",
    "optuna_tpe", "pyglove_evolution",
)


def _registry() -> Dict[str, Tuple[Callable[..., Searcher], dict]]:
    """Algorithm name -> (class, settings it fixes)."""
    from layernas_tf.search import baselines, peers
    from layernas_tf.search.layernas import LayerNAS

    aware, unaware = {"constraint_aware": True}, {"constraint_aware": False}
    return {
        "layernas": (LayerNAS, {}),
        "random": (baselines.RandomSearch, aware),
        "evolution": (baselines.RegularizedEvolution, aware),
        "ppo": (baselines.PolicyGradient, dict(aware, method="ppo")),
        "random_unaware": (baselines.RandomSearch, unaware),
        "evolution_unaware": (baselines.RegularizedEvolution, unaware),
        "ppo_unaware": (baselines.PolicyGradient, dict(unaware, method="ppo")),
        "optuna_tpe": (peers.OptunaTPE, aware),
        "pyglove_evolution": (peers.PyGloveEvolution, aware),
    }


def make_searcher(name: str, problem: Problem, budget: int, seed: int = 0, **settings) -> Searcher:
    """Build the searcher `name` (one of ALGORITHMS) with optional settings.

    `make_searcher(state["name"], problem, state["budget"], state["seed"], **state["settings"])`
    rebuilds a searcher from `get_state()`, before replaying its trials.

    Raises:
      ValueError: unknown algorithm name, a setting that contradicts the algorithm, or a bad setting.
    """
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; allowed: {', '.join(ALGORITHMS)}")
    cls, fixed = _registry()[name]
    for key, value in fixed.items():
        if settings.get(key, value) != value:
            raise ValueError(f"algorithm {name!r} has {key}={value!r}; got {key}={settings[key]!r}")
    searcher = cls(problem, budget, seed, **{**settings, **fixed})
    searcher.name = name
    return searcher


def parse_settings(name: str, items: Sequence[str]) -> dict:
    """Parse `key=value` strings into settings for algorithm `name`, typed like the searcher's defaults.

    Raises:
      ValueError: an item without '=', a key the searcher does not take, or a value of the wrong type.
    """
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; allowed: {', '.join(ALGORITHMS)}")
    cls, fixed = _registry()[name]
    params = {k: p for k, p in inspect.signature(cls.__init__).parameters.items()
              if k not in ("self", "problem", "budget", "seed") and k not in fixed}
    settings = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key:
            raise ValueError(f"{name} setting {item!r} is not key=value")
        if key not in params:
            raise ValueError(f"{name} has no setting {key!r}; allowed: {', '.join(params)}")
        default = params[key].default
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                value = text.lower() in ("true", "1")
            elif isinstance(default, (int, float, str)):
                value = type(default)(text)
            else:
                value = text
        except ValueError:
            raise ValueError(f"{name} setting {key}={text!r}: expected {type(default).__name__}") from None
        settings[key] = value
    return settings


__all__ = ["ALGORITHMS", "InfeasibleTargetError", "Problem", "Searcher", "Trial", "make_searcher", "parse_settings"]
