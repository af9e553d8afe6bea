import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).parent))

REPO = pathlib.Path(__file__).resolve().parent.parent
BENCHMARKS = REPO.parent / "shared" / "benchmarks"


def pytest_configure(config):
    # TensorFlow, Keras and tfmot warn about their own deprecations; keep the test output readable.
    for category in ("DeprecationWarning", "UserWarning", "FutureWarning"):
        config.addinivalue_line("filterwarnings", f"ignore::{category}")
