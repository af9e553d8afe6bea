"""The `--layernas_settings` flag shared by the main job and the benchmark: one definition, one check."""

from __future__ import annotations

from absl import flags

from layernas_tf.search import Problem, make_searcher, parse_settings

NAME = "layernas_settings"


def define_layernas_settings(help_suffix: str = "", flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Define `--layernas_settings` (key=value,...) with a validator that names the bad item.

    Defining it again in the same process (both CLIs imported) is a no-op.
    """
    if NAME in flag_values:
        return
    flags.DEFINE_list(NAME, [], "LayerNAS settings as key=value pairs, e.g. per_bucket=2,refine=none." + help_suffix,
                      flag_values=flag_values)

    def check(values):
        try:
            check_settings("layernas", values)
        except ValueError as e:
            raise flags.ValidationError(f"--{NAME}: {e}")
        return True

    flags.register_validator(NAME, check, message=f"--{NAME}: see the error above", flag_values=flag_values)


def check_settings(name: str, items) -> dict:
    """Parse `key=value` items for searcher `name` and build it once on a tiny problem, so a value the
    searcher refuses (not only a wrong type) is caught before any work starts.

    Raises:
      ValueError: naming the bad item or value and what is allowed.
    """
    settings = parse_settings(name, items)
    make_searcher(name, Problem((2, 2), sum, max_cost=2), budget=10, seed=0, **settings)
    return settings
