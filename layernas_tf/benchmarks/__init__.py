"""Benchmark CLIs, each behind a console script whose name stays stable when modules move:

- `layernas-benchmark` (`tables.py`): searchers on tabular NAS benchmarks;
- `layernas-ablation` (`ablation.py`): LayerNAS settings one change at a time;
- `layernas-make-table` (`make_table.py`): tables the searchers have never seen;
- `layernas-trial-benchmark` (`trial.py`): the search's overhead per trained candidate;
- `layernas-profile-benchmark` (`profile.py`): cost model throughput and TFLite latency;
- `layernas-memory-benchmark` (`memory.py`): RSS of the training process over a long search;
- `layernas-latency-benchmark` (`latency.py`): latency predictors against whole models measured twice.
"""
