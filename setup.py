from setuptools import find_packages, setup

# MediaPipe writes the TFLite Model Metadata of the exported models (and its ImageClassifier checks them in
# tests). It is installed in a second step, `pip install "<MEDIAPIPE>"` (.ci/run does), not declared here:
# mediapipe 1.2 requires absl-py~=2.3 and tensorflow-model-optimization 0.8 absl-py~=1.2, so pip cannot
# resolve one install holding both, although both run on absl-py 2. See docs/deployment.md.
MEDIAPIPE = "mediapipe>=1.2.3,<1.3"

setup(
    name="layernas_tf",
    version="0.1.0",
    description="LayerNAS for Keras: search MobileNetV2/V3 spaces under MAdds, params or latency targets, ship int8 TFLite.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["layernas_tf", "layernas_tf.*", "searchspaces", "searchspaces.*", "train", "train.*", "export", "export.*"]),
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "tf-keras>=2.21,<2.22",
        "tensorflow-model-optimization>=0.8,<0.9",
        "tensorflow-datasets>=4.9,<5",
        "ai-edge-litert>=2.0,<3",
        "absl-py>=1.4,<3",
        "numpy>=1.26,<3",
        "threadpoolctl>=3.1,<4",
        "matplotlib>=3.8,<4",
        "scikit-learn>=1.4,<2",
        "tqdm>=4.66,<5",
        "scipy>=1.11,<2",
        "tensorboard>=2.20,<2.22",
    ],
    extras_require={
        # pillow writes the PNG files MediaPipe's ImageClassifier reads in tests/test_mediapipe.py.
        "test": ["pytest>=8,<10", "optuna>=4,<6", "pyglove>=0.4.4,<0.5", "keras-tuner>=1.4.8,<1.5", "pillow>=10,<14"],
        "bench": ["optuna>=4,<6", "pyglove>=0.4.4,<0.5"],
        "ray": ["ray>=2.40,<3"],
        "keras-tuner": ["keras-tuner>=1.4.8,<1.5"],
    },
    entry_points={
        "console_scripts": [
            "layernas=layernas_tf.main:run",
            "layernas-export=layernas_tf.export_main:run",
            "layernas-profile=layernas_tf.latency.cli:run",
            "layernas-benchmark=layernas_tf.benchmarks.tables:run",
            "layernas-ablation=layernas_tf.benchmarks.ablation:run",
            "layernas-make-table=layernas_tf.benchmarks.make_table:run",
            "layernas-trial-benchmark=layernas_tf.benchmarks.trial:run",
            "layernas-profile-benchmark=layernas_tf.benchmarks.profile:run",
            "layernas-memory-benchmark=layernas_tf.benchmarks.memory:run",
            "layernas-latency-benchmark=layernas_tf.benchmarks.latency:run",
            "layernas-own-time-benchmark=layernas_tf.benchmarks.own_time:run",
            "layernas-keras-tuner-benchmark=layernas_tf.benchmarks.keras_tuner:run",
        ]
    },
)
