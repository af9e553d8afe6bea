"""The report ranks trials the way the searcher does: best-so-far curve and summary table."""

from layernas_tf import report
from layernas_tf.store import COMPLETED, FAILED, TrialRecord

TRIALS = [
    TrialRecord(0, "0-0", 5.0, 5, 50, COMPLETED, 0.80),
    TrialRecord(1, "1-0", 6.0, 6, 60, COMPLETED, 0.90),  # lucky: high reward, low noise-aware score
    TrialRecord(2, "1-1", 7.0, 7, 70, COMPLETED, 0.88),
    TrialRecord(3, "2-2", 20.0, 20, 200, COMPLETED, 0.99),  # outside the target
    TrialRecord(4, "2-1", 8.0, 8, 80, FAILED, None, error="NaN loss"),
]
SCORES = {"0-0": 0.80, "1-0": 0.84, "1-1": 0.87, "2-2": 0.99}


def test_best_so_far_follows_the_searchers_ranking():
    assert report.best_so_far(TRIALS, 0, 10, SCORES) == [0.80, 0.90, 0.88, 0.88, 0.88]


def test_best_so_far_without_scores_ranks_by_validation_accuracy():
    assert report.best_so_far(TRIALS, 0, 10) == [0.80, 0.90, 0.90, 0.90, 0.90]


def test_summary_table_ranks_by_score_and_shows_the_target_metric_once():
    table = report.summary_table(TRIALS, TRIALS[2], "madds", 0, 10, scores=SCORES)
    lines = table.splitlines()
    header = lines[0].split()
    assert header.count("MAdds") == 1 and "madds" not in header
    ranked = [line.split()[1] for line in lines[1:4]]
    assert ranked == ["1-1", "1-0", "0-0"] and lines[1].split()[0] == "2*"
    assert "2-2" not in table  # outside the target range
    assert "NaN loss" in table
