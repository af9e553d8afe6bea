"""How well latency predictors match whole models measured on this machine.

    layernas-latency-benchmark --search_space=mobilenet_v3_small --input_size=224 --candidates=40 \\
        --formats=float,int8 --threads=1 --out=runs/latency_benchmark

For each format: builds the per-block latency table of the space on this machine (a kit of one-part
`.tflite` models, timed with LiteRT), draws `--candidates` candidates stratified over the space's
MAdds range (equal numbers in ten equal-width bins from the cheapest to the costliest candidate;
none of them a calibration model of either predictor), times each as a whole model twice in
separate passes, and compares the predictions with the first pass. Both predictors fit their
whole-model terms in that first pass: the linear model (a + b·MAdds + c·params) on its 10
calibration candidates, the table its constant and scale on its own calibration models (its part
entries are as built):
- `table`: the table's prediction against the first pass;
- `linear`: the linear model's prediction against the first pass;
- `remeasure`: the second pass against the first, the noise floor of the measurement itself.

Writes DIR/latency_benchmark.json (rows of other spaces/formats already there are kept) and
DIR/latency_<space>_<size>_<format>.png (predicted against measured).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json  # noqa: E402
import pathlib  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from absl import app, flags, logging  # noqa: E402

import searchspaces  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("search_space", "mobilenet_v3_small", list(searchspaces.SPACE_NAMES), "Search space.")
flags.DEFINE_integer("input_size", 0, "Input size (0: the space's own).", lower_bound=0)
flags.DEFINE_integer("num_classes", 0, "Classes (0: the space's own).", lower_bound=0)
flags.DEFINE_integer("candidates", 40, "Candidates timed as whole models (stratified over MAdds).", lower_bound=10)
flags.DEFINE_list("formats", ["float", "int8"], "TFLite formats: float, int8.")
flags.DEFINE_integer("threads", 1, "Interpreter threads.", lower_bound=1)
flags.DEFINE_integer("passes", 5, "Interleaved passes per measurement (median of their medians).", lower_bound=1)
flags.DEFINE_integer("workers", 2, "Conversion processes.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the candidates.")
flags.DEFINE_string("kit_dir", None, "Where the kit's .tflite files go (default: OUT/kit; shared by spaces).")
flags.DEFINE_string("out", "runs/latency_benchmark", "Output folder.")


@flags.validator("formats", message="--formats: each of float, int8")
def _formats_known(values):
    return bool(values) and all(v in ("float", "int8") for v in values)


def accuracy_row(predicted, measured) -> dict:
    """within_10pct, within_5pct (shares in [0, 1]), mape_pct and kendall_tau of `predicted` vs `measured`."""
    from scipy.stats import kendalltau

    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    return {"candidates": len(measured), "within_10pct": sum(e <= 0.10 for e in errors) / len(errors),
            "within_5pct": sum(e <= 0.05 for e in errors) / len(errors),
            "mape_pct": 100.0 * statistics.fmean(errors), "kendall_tau": float(kendalltau(predicted, measured)[0])}


def benchmark_format(space, input_size, num_classes, quantization, kit_dir) -> tuple:
    from layernas_tf.latency import kit as latency_kit
    from layernas_tf.latency.block_table import TableLatency, fit_calibration, kit_file_name, model_key
    from layernas_tf.latency.linear_model import fit_latency_model, linear_calibration_encodings

    start = time.perf_counter()
    table = latency_kit.build_table([(space, input_size, num_classes)], quantization, FLAGS.threads, kit_dir,
                                    workers=FLAGS.workers, passes=FLAGS.passes)
    build_s = time.perf_counter() - start
    predictor = TableLatency(table, space, input_size, num_classes)
    linear_picks = linear_calibration_encodings(space, input_size, num_classes, 10, FLAGS.seed)
    table_picks = [space.parse(s[0]) for s in predictor.to_json()["calibration"]["samples"]]
    candidates = latency_kit.stratified_encodings(space, input_size, num_classes, FLAGS.candidates, FLAGS.seed + 1,
                                                  exclude=linear_picks + table_picks)
    latency_kit.convert_files(kit_dir, quantization,
                              latency_kit.model_files(space, input_size, num_classes, quantization,
                                                      candidates + linear_picks + table_picks), FLAGS.workers)

    def path(e):
        return str(pathlib.Path(kit_dir) / kit_file_name(quantization, model_key(space, input_size, num_classes, e)))

    # Both predictors fit their whole-model terms on models timed in the candidates' first pass: the
    # linear model its three coefficients on its 10 picks, the table its constant and scale on its own
    # calibration models (its part entries stay as built). A machine or phone whose speed drifts
    # between the table's build and later timings (this VM's did by up to ~10%) would otherwise be
    # charged to the table alone. The calibration as built is kept in the details.
    first = latency_kit.time_locally([path(e) for e in linear_picks + table_picks + candidates], FLAGS.threads,
                                     FLAGS.passes, seed=1)
    second = latency_kit.time_locally([path(e) for e in candidates], FLAGS.threads, FLAGS.passes, seed=2)
    linear = fit_latency_model(space, input_size, num_classes, [(e, first[path(e)]) for e in linear_picks],
                               quantization, FLAGS.threads)
    as_built = predictor.to_json()["calibration"]
    session = fit_calibration([(space.to_string(e), first[path(e)], predictor.parts_ms(e)) for e in table_picks])
    predictor.intercept_ms, predictor.scale = session["intercept_ms"], session["scale"]
    measured = [first[path(e)] for e in candidates]
    predictions = {"table": [predictor(e) for e in candidates], "linear": [linear(e) for e in candidates],
                   "remeasure": [second[path(e)] for e in candidates]}
    base = {"search_space": space.name, "input_size": input_size, "format": quantization,
            "num_threads": FLAGS.threads}
    rows = [{**base, "predictor": name, **accuracy_row(values, measured)} for name, values in predictions.items()]
    detail = {**base, "table_build": {**table.build, "seconds": round(build_s, 1)},
              "table_calibration_as_built": {k: v for k, v in as_built.items() if k != "samples"},
              "table_calibration": {k: v for k, v in session.items() if k != "samples"},
              "linear_coefficients_ms": linear.to_json()["coefficients_ms"],
              "linear_leave_one_out_pct": linear.mean_abs_error_pct,
              "candidates": [{"encoding": space.to_string(e), "measured_ms": m, "remeasured_ms": r, "table_ms": t,
                              "linear_ms": lin}
                             for e, m, r, t, lin in zip(candidates, measured, predictions["remeasure"],
                                                        predictions["table"], predictions["linear"])]}
    return rows, detail, measured, predictions


def _plot(space, input_size, quantization, measured, predictions, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for name, marker in (("remeasure", "."), ("linear", "x"), ("table", "o")):
        ax.scatter(measured, predictions[name], s=18, marker=marker, label=name,
                   facecolors="none" if marker == "o" else None, edgecolors="C0" if marker == "o" else None)
    low, high = min(measured) * 0.9, max(measured) * 1.1
    ax.plot([low, high], [low, high], "k-", lw=0.8)
    for f in (0.9, 1.1):
        ax.plot([low, high], [low * f, high * f], "k:", lw=0.6)
    ax.set_xlabel("measured ms (first pass)")
    ax.set_ylabel("predicted ms (or second pass)")
    ax.set_title(f"{space} @{input_size}, {quantization}, {FLAGS.threads} thread(s); dotted: ±10%", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv):
    del argv
    from layernas_tf import quiet

    quiet.import_tensorflow()
    logging.set_verbosity(logging.INFO)
    space = searchspaces.get_space(FLAGS.search_space)
    input_size = FLAGS.input_size or space.input_size
    num_classes = FLAGS.num_classes or space.num_classes
    out = pathlib.Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    kit_dir = FLAGS.kit_dir or str(out / "kit")
    result_path = out / "latency_benchmark.json"
    payload = json.loads(result_path.read_text()) if result_path.exists() else {"results": [], "details": []}

    def same(row, quantization):
        return (row["search_space"], row["input_size"], row["format"], row["num_threads"]) == (
            space.name, input_size, quantization, FLAGS.threads)

    for quantization in FLAGS.formats:
        rows, detail, measured, predictions = benchmark_format(space, input_size, num_classes, quantization, kit_dir)
        payload["results"] = [r for r in payload["results"] if not same(r, quantization)] + rows
        payload["details"] = [d for d in payload["details"] if not same(d, quantization)] + [detail]
        result_path.write_text(json.dumps(payload, indent=1))
        _plot(space.name, input_size, quantization, measured, predictions,
              out / f"latency_{space.name}_{input_size}_{quantization}.png")
        build = detail["table_build"]
        print(f"\n{space.name} @{input_size}, {quantization}, {FLAGS.threads} thread(s): table of {build['parts']} "
              f"parts built in {build['seconds']:.0f} s (convert {build['convert_seconds']:.0f} s, time "
              f"{build['time_seconds']:.0f} s); whole models {min(measured):.3f}-{max(measured):.3f} ms")
        print("| predictor | candidates | within ±10% | within ±5% | mean error % | Kendall τ |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['predictor']} | {r['candidates']} | {r['within_10pct']:.0%} | {r['within_5pct']:.0%} | "
                  f"{r['mape_pct']:.2f} | {r['kendall_tau']:.3f} |")
    print(f"\nwrote {result_path}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
