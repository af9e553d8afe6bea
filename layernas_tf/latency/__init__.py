"""Latency: what a candidate costs in milliseconds where its `.tflite` file runs.

- `timing`: time a `.tflite` model with the LiteRT interpreter (and predict a batch with it).
- `block_table`: the per-block latency table (pure Python): part keys, readers of measured tables,
  a candidate's latency as the sum of its parts.
- `kit`: the one-part and calibration models to time, converted and timed here or on a device.
- `linear_model`: the earlier predictor, a + b * MAdds + c * params on a few timed candidates.
- `benchmark_model`: a local stand-in for TensorFlow Lite's `benchmark_model` tool.
- `cli`: the `layernas-profile` command line.
"""
