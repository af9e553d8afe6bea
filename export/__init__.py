"""Export: TFLite conversion (float, int8 post-training, quantization-aware) and interpreter evaluation."""
