"""layernas_tf: LayerNAS search over Keras MobileNet spaces, exported as quantized TFLite.

`layernas_tf.run_search(space, train_ds, val_ds, layernas_tf.Target("madds", 6e6))` runs a search from
Python (see `layernas_tf.api`); `python -m layernas_tf.main` (or `layernas`) is the command-line job.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: `layernas_tf.search` is also the pure-Python searcher package; the API function is
    # reached as an attribute only when asked for by these names.
    if name in ("Target", "SearchResult", "run_search"):
        from layernas_tf import api

        return {"Target": api.Target, "SearchResult": api.SearchResult, "run_search": api.search}[name]
    raise AttributeError(f"module 'layernas_tf' has no attribute {name!r}")
