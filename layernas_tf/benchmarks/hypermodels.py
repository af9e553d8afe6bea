"""The HyperModels and data of `layernas-keras-tuner-benchmark`, importable without its flags."""

from __future__ import annotations


def digits(size: int = 8, channels: int = 1):
    """scikit-learn's digits as ((x_train, y_train), (x_val, y_val)): 1200 / 597 images, upsampled
    by repetition to `size` x `size` and repeated to `channels`."""
    import numpy as np
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).reshape(-1, 8, 8, 1).astype("float32")
    if size != 8:
        x = x.repeat(size // 8, axis=1).repeat(size // 8, axis=2)
    x = np.repeat(x, channels, axis=3)
    return (x[:1200], y[:1200]), (x[1200:], y[1200:])


def build_digits_cnn(hp):
    """The compared HyperModel: three conv blocks and a dense layer, widths and kernels searched."""
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1))])
    for i in range(3):
        model.add(keras.layers.Conv2D(hp.Choice(f"conv{i}_filters", [8, 16, 24, 32, 48]),
                                      hp.Choice(f"conv{i}_kernel", [3, 5]), padding="same", activation="relu",
                                      name=f"conv{i}"))
        if i == 1:
            model.add(keras.layers.MaxPooling2D(name="pool"))
    model.add(keras.layers.GlobalAveragePooling2D())
    model.add(keras.layers.Dense(hp.Choice("dense_units", [16, 32, 64]), activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def build_mobilenet_v2_stages(hp, input_size: int = 32, num_classes: int = 10):
    """MobileNetV2 as a Keras Tuner user writes it: a width multiplier and, per stage after the first,
    the expansion ratio and the depthwise kernel are hyperparameters. The defaults are the published
    network (2.26M params at 32x32 and 10 classes)."""
    import keras

    layers = keras.layers

    def divisible(value):
        return max(8, int(value + 4) // 8 * 8) + (8 if int(value + 4) // 8 * 8 < 0.9 * value else 0)

    width = hp.Choice("width", [0.75, 1.0, 1.4], default=1.0)
    inputs = keras.Input((input_size, input_size, 3))
    x = layers.Conv2D(divisible(32 * width), 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
    channels = divisible(32 * width)
    stages = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
    for stage, (expansion, filters, repeats, strides) in enumerate(stages):
        kernel = 3
        if stage:
            expansion = hp.Choice(f"stage{stage}_expansion", [3, 6], default=6)
            kernel = hp.Choice(f"stage{stage}_kernel", [3, 5], default=3)
        out = divisible(filters * width)
        for repeat in range(repeats):
            shortcut = x
            if expansion != 1:
                x = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(channels * expansion, 1, use_bias=False)(x)))
            x = layers.DepthwiseConv2D(kernel, strides=strides if repeat == 0 else 1, padding="same", use_bias=False)(x)
            x = layers.ReLU(6.0)(layers.BatchNormalization()(x))
            x = layers.BatchNormalization()(layers.Conv2D(out, 1, use_bias=False)(x))
            if repeat and channels == out:
                x = layers.Add()([shortcut, x])
            channels = out
    x = layers.Conv2D(1280 if width <= 1.0 else divisible(1280 * width), 1, use_bias=False)(x)
    x = layers.GlobalAveragePooling2D()(layers.ReLU(6.0)(layers.BatchNormalization()(x)))
    model = keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
