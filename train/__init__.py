"""Training: data pipelines (tf.data) and proxy / final training of candidates."""
