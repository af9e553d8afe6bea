"""What each LayerNAS choice buys: the default searcher against variants that undo one choice each.

    layernas-ablation --tables=../shared/benchmarks/nas-bench-macro_cifar10.json,\
../shared/benchmarks/channel-bench-macro_mobilenet_cifar10.json --runs=100 --flops_fraction=0.5 --out=DIR
    layernas-ablation --objectives=layernas_tf.benchmarks.surrogates:mobilenet_v3_large_224,\
layernas_tf.benchmarks.surrogates:cifar_mobilenet_v2_32 --runs=100 --flops_fraction=0.5 --out=DIR

Every variant runs the same seeds and noise as `layernas_tf.benchmarks.tables`. Writes DIR/ablation.json and
DIR/ablation.md: per table mean regret, per objective (each over the space it names) mean score, for
each budget, one row per variant; and per variant and table, the largest setback with budget (how much
worse a larger budget's mean is than a smaller one's). The JSON also holds, per variant, each run's
score (`scores`: per table or objective, budget and seed) and the paired difference of its mean score
from the first variant's, with its standard error (`paired_with_first`). No TensorFlow.
"""

from __future__ import annotations

import json
import pathlib
from typing import Dict, List

from absl import app, flags, logging

from layernas_tf.benchmarks import tables as benchmark
from layernas_tf.benchmarks.summary import largest_setback, paired_with, scores_by_seed
from layernas_tf.search import parse_settings

FLAGS = flags.FLAGS
flags.DEFINE_list("tables", [], "Benchmark tables (paths), comma-separated.")
flags.DEFINE_list("objectives", [], "Objectives (MODULE:NAME, each naming its search_space), comma-separated.")
flags.DEFINE_list("variants", None, "Variant names to run (default: all); allowed: see VARIANTS.")

# Variant name -> (what it tests, LayerNAS settings). "default" is the shipped searcher; "paper" is a
# faithful reading of the paper; every other row changes one setting of the default.
VARIANTS: Dict[str, tuple] = {
    "default": ("the shipped searcher", []),
    "paper": ("paper reading: cheapest fill, total-cost buckets, observed rewards, no refinement, H from the budget",
              ["fill=cheapest", "bucket_by=total", "selection=observed", "refine=none", "num_buckets=0"]),
    "steps=layers": ("one sweep step per layer over all its options", ["steps=layers"]),
    "num_buckets=0": ("H planned from the budget when each step closes: each budget is another search",
                      ["num_buckets=0"]),
    "bucket_plan=upfront": ("one H for the whole sweep, from the budget's worst case",
                            ["num_buckets=0", "bucket_plan=upfront"]),
    "layers+upfront": ("steps=layers and bucket_plan=upfront (the searcher before attribute steps)",
                       ["steps=layers", "num_buckets=0", "bucket_plan=upfront"]),
    "num_buckets=2": ("two cost buckets in every step", ["num_buckets=2"]),
    "fill=cheapest": ("unsearched layers at their cheapest option", ["fill=cheapest"]),
    "bucket_by=total": ("buckets keyed on the child's whole cost", ["bucket_by=total"]),
    "selection=observed": ("rank by a candidate's own noisy reward", ["selection=observed"]),
    "refine=none": ("no refinement: the whole budget plans the sweep", ["refine=none", "num_buckets=0"]),
    "sweep_share=0.5": ("H planned from the budget, the sweep planning for 50% of it",
                        ["num_buckets=0", "sweep_share=0.5"]),
    "refine_radius=1": ("refinement tries one-layer changes only", ["refine_radius=1"]),
    "per_bucket=2": ("each bucket keeps its 2 best", ["per_bucket=2"]),
    "model_fraction=1": ("search-time model fitted on all evaluations", ["model_fraction=1"]),
    "select_fraction=0.5": ("final pick with the model fitted on the better half", ["select_fraction=0.5"]),
    "select_fraction=0": ("final pick's share chosen by held-out error on the best candidates",
                          ["select_fraction=0"]),
    "pick=blend": ("final pick trusts the all-evaluations model (no lower of two)", ["pick=blend"]),
    "order=backward": ("layers searched output to input", ["order=backward"]),
    "dominated_buckets=drop": ("a bucket's candidate is dropped when a better one takes every completion within the target",
                               ["dominated_buckets=drop"]),
    "prune=dominated": ("a sweep child is not trained when a sibling at no more committed cost beat it under the step's other parents",
                        ["prune=dominated"]),
    "explore=0": ("refinement ranks by the model's prediction alone (no bonus for rarely seen options)", ["explore=0"]),
    "explore=2": ("refinement's bonus for rarely seen options doubled", ["explore=2"]),
    "bonus_counts=share": ("an option's exploration bonus counts only the evaluations the search-time model is "
                           "fitted on (the rule before)", ["bonus_counts=share"]),
    "replicates=1": ("no candidate is evaluated again (one evaluation per candidate)", ["replicates=1"]),
    "replicates=3": ("the race of the final pick's leader and runner-up stops at 3 evaluations each",
                     ["replicates=3"]),
    "race=no_better": ("the race starts only once refinement's pick is not predicted above the raced candidate "
                       "(the rule before)", ["race=no_better"]),
    "replicate_runner_up=false": ("only the final pick's leader is evaluated again, up to 3 evaluations (the rule "
                                  "before the race)", ["replicate_runner_up=false", "replicates=3"]),
}


@flags.validator("variants", message=f"--variants: each must be one of {', '.join(VARIANTS)}")
def _check_variants(values):
    return values is None or all(v in VARIANTS for v in values)


def _short(name: str) -> str:
    return name.rpartition(":")[2] if ":" in name else pathlib.Path(name).stem


def ablation_markdown(rows: Dict[str, Dict[str, Dict[int, dict]]], tables: List[str], budgets: List[int]) -> str:
    """One row per variant, one column per (table or objective, budget): mean regret of a table, mean
    score of an objective."""
    names = [_short(t) for t in tables]
    header = "| variant | what it changes | " + " | ".join(f"{n} @{b}" for n in names for b in budgets) + " |"
    lines = [header, "|---|---|" + "---|" * (len(names) * len(budgets))]
    metric = {t: benchmark.metric_of({v: rows[v][t] for v in rows}) for t in tables}
    for variant, by_table in rows.items():
        cells = [f"{by_table[t][b][metric[t]]:.3f}" for t in tables for b in budgets]
        lines.append(f"| `{variant}` | {VARIANTS[variant][0]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def setbacks_of(rows: Dict[str, Dict[str, Dict[int, dict]]], tables: List[str]) -> Dict[str, Dict[str, tuple]]:
    """Per variant and table or objective, its `largest_setback` (mean regret on tables, mean score on
    objectives)."""
    metric = {t: benchmark.metric_of({v: rows[v][t] for v in rows}) for t in tables}
    return {v: {t: largest_setback(by_table[t], metric[t]) for t in tables} for v, by_table in rows.items()}


def setback_markdown(setbacks: Dict[str, Dict[str, tuple]], tables: List[str]) -> str:
    """One row per variant, one column per table or objective: its largest setback with the budgets."""
    names = [_short(t) for t in tables]
    lines = ["| variant | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for variant, by_table in setbacks.items():
        cells = [f"{by_table[t][0]:.3f} ({by_table[t][1]}→{by_table[t][2]})" if by_table[t][0] > 0 else "0"
                 for t in tables]
        lines.append(f"| `{variant}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    if not FLAGS.tables and not FLAGS.objectives:
        raise app.UsageError("--tables or --objectives is required: comma-separated paths of benchmark tables, "
                             "or MODULE:NAME objectives")
    sources = {t: t for t in FLAGS.tables}
    sources.update({o: ("objective", o, "", 0, 0) for o in FLAGS.objectives})
    for source in sources.values():
        benchmark.load_problem(source, FLAGS.flops_fraction)  # clear error before any work
    budgets = sorted(int(b) for b in FLAGS.budgets)
    variants = FLAGS.variants or list(VARIANTS)
    rows: Dict[str, Dict[str, Dict[int, dict]]] = {v: {} for v in variants}
    scores: Dict[str, dict] = {}  # per table or objective: per variant, budget and seed, the run's score
    wall = {}
    for table_path, source in sources.items():
        jobs = []
        for variant in variants:
            settings = parse_settings("layernas", VARIANTS[variant][1])
            jobs += [(variant, "layernas", tuple(settings.items()), seed) for seed in range(FLAGS.runs)]
        runs: list = []
        summary, _, wall[table_path] = benchmark.run_jobs(source, FLAGS.flops_fraction, budgets, jobs,
                                                          FLAGS.workers, runs=runs)
        scores[table_path] = scores_by_seed(runs)
        for variant in variants:
            rows[variant][table_path] = summary[variant]
        logging.info("%s: %d variants x %d runs in %.0f s", table_path, len(variants), FLAGS.runs, wall[table_path])
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    setbacks = setbacks_of(rows, list(sources))
    payload = {
        "tables": FLAGS.tables, "objectives": FLAGS.objectives, "flops_fraction": FLAGS.flops_fraction, "runs": FLAGS.runs, "budgets": budgets,
        "wall_seconds": wall,
        "variants": {v: {"description": VARIANTS[v][0], "settings": VARIANTS[v][1],
                         "results": {t: {str(b): s for b, s in rows[v][t].items()} for t in sources},
                         "largest_setback": setbacks[v],
                         "scores": {t: scores[t][v] for t in sources},
                         "paired_with_first": {t: paired_with({v: scores[t][v]}, {v: scores[t][variants[0]]})[v]
                                               for t in sources}}
                     for v in variants},
    }
    (out / "ablation.json").write_text(json.dumps(payload, indent=2))
    md = (f"LayerNAS ablation: FLOPs <= {FLAGS.flops_fraction:g} x max, {FLAGS.runs} runs; mean regret on tables, "
          f"mean score on objectives (surrogates, not measurements)\n\n" + ablation_markdown(rows, list(sources), budgets)
          + "\n\nLargest setback with budget: how much worse a larger budget's mean is than a smaller one's "
          "(regret up, score down), with the two budgets\n\n" + setback_markdown(setbacks, list(sources)))
    (out / "ablation.md").write_text(md + "\n")
    print(md)
    print(f"\nwrote {out / 'ablation.json'}, {out / 'ablation.md'}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
