"""The `--layernas_settings` flag shared by the main job and the benchmark: one definition, one check."""

from __future__ import annotations

from absl import flags

from layernas_tf.search import parse_settings

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
            parse_settings("layernas", values)
        except ValueError as e:
            raise flags.ValidationError(f"--{NAME}: {e}")
        return True

    flags.register_validator(NAME, check, message=f"--{NAME}: see the error above", flag_values=flag_values)
