import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(pathlib.Path(__file__).parent))

REPO = pathlib.Path(__file__).resolve().parent.parent
BENCHMARKS = REPO.parent / "shared" / "benchmarks"


def shared_table(filename: str) -> pathlib.Path:
    """The path of a shipped benchmark table; skips the test without it, and fails it in CI (where
    a skip would hide a missing check)."""
    import pytest

    path = BENCHMARKS / filename
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"benchmark table not found at {path} (CI is set)")
        pytest.skip(f"benchmark table not found at {path}")
    return path


def pytest_configure(config):
    # TensorFlow, Keras and tfmot warn about their own deprecations; keep the test output readable.
    for category in ("DeprecationWarning", "UserWarning", "FutureWarning"):
        config.addinivalue_line("filterwarnings", f"ignore::{category}")
