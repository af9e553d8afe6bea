"""layernas_tf: LayerNAS search over Keras MobileNet spaces, exported as quantized TFLite."""

__version__ = "0.1.0"
