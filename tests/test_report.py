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


def test_phase_rates_split_the_search_at_the_sweeps_last_hand_out():
    from layernas_tf.report import phase_rates
    from layernas_tf.store import COMPLETED, RUNNING, TrialRecord

    def trial(number, finished_at, status=COMPLETED, repeat_of=None):
        return TrialRecord(number, f"{number}", 1.0, 1, 1, status, 0.5, finished_at=finished_at, repeat_of=repeat_of)

    # Sweep: trials 0-2, the last finishing 6 minutes after the start; refinement: 3-5 over 2 minutes
    # (trial 5 is a repeat, trial 6 still runs).
    trials = [trial(0, 1060), trial(1, 1180), trial(2, 1360), trial(3, 1420), trial(4, 1480),
              trial(5, 1481, repeat_of=4), trial(6, 0, status=RUNNING)]
    assert phase_rates(trials, sweep_trials=3, started_at=1000) == {
        "sweep": {"trials": 3, "minutes": 6.0, "trials_per_min": 0.5},
        "refine": {"trials": 2, "minutes": 2.0, "trials_per_min": 1.0}}
