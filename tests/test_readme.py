"""The README's Python API example runs as written, on digits, with a smaller budget."""

import os
import re
import subprocess
import sys

from conftest import REPO


def readme_python_example(heading: str = "Python API") -> str:
    """The first ```python block under the README's "## <heading>" heading."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"^```python\n(.*?)^```", section, re.S | re.M).group(1)


def with_budget(code: str, max_trials: int, epochs: int) -> str:
    """`code` with its run_search budget (`max_trials=N, epochs=M`, both documented arguments) replaced."""
    budget = re.compile(r"max_trials=\d+, epochs=\d+")
    assert len(budget.findall(code)) == 1, "the README's example should set max_trials and epochs once"
    return budget.sub(f"max_trials={max_trials}, epochs={epochs}", code)


def run_example(code: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def test_the_readme_keras_tuner_example_runs_as_written(tmp_path):
    code = readme_python_example("The Keras Tuner tuner")
    done = run_example(code + "\nprint('best params', best_model.count_params())\n", tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    best_params = int(done.stdout.strip().splitlines()[-1].split()[-1])
    assert 0 < best_params <= 8000
    assert "Results summary" in done.stdout
    assert (tmp_path / "runs" / "digits" / "oracle.json").exists()


def test_the_readme_python_example_runs_as_written_on_digits(tmp_path):
    code = with_budget(readme_python_example(), max_trials=2, epochs=1)
    done = run_example(code, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    encoding, madds, val_accuracy = lines[0].split()
    assert re.fullmatch(r"\d+(-\d+){6}", encoding)  # cifar_mobilenet_v2 has 7 searchable layers
    assert int(madds) <= 6e6 and 0.0 <= float(val_accuracy) <= 1.0
    # the first trial is the published default (9.2M MAdds, above the target), so the winner is the only
    # trial within it, and the only bucket winner
    assert len(lines) == 2 and lines[1] == lines[0]
    assert (tmp_path / "runs" / "api_search" / "trials.sqlite").exists()
    assert "trials: 100%" in done.stderr and "2/2 [" in done.stderr  # the progress bar, shown by default
