import pytest

from layernas_tf.store import COMPLETED, FAILED, IncompatibleSearchError, TrialRecord, TrialStore, summary_counts


def test_trials_survive_reopening(tmp_path):
    with TrialStore(str(tmp_path), {"space": "cifar_mobilenet_v2", "target_madds": 5e6}) as store:
        store.add(TrialRecord(0, "2-5-5-5-5-5-5", 9.2e6, 9220608, 134538, COMPLETED, 0.91, timings={"train_s": 3.5}))
        store.add(TrialRecord(1, "0-0-0-0-0-0-0", 4e6, 4000000, 50000, FAILED, None, error="NaN loss"))
    with TrialStore(str(tmp_path), {"space": "cifar_mobilenet_v2", "target_madds": 5e6}) as store:
        trials = store.trials()
    assert [(t.number, t.encoding, t.status, t.reward, t.error) for t in trials] == [
        (0, "2-5-5-5-5-5-5", COMPLETED, 0.91, ""), (1, "0-0-0-0-0-0-0", FAILED, None, "NaN loss")]
    assert trials[0].timings == {"train_s": 3.5}
    assert summary_counts(trials) == {"completed": 1, "failed": 1}


def test_other_settings_are_refused_and_nothing_is_lost(tmp_path):
    with TrialStore(str(tmp_path), {"space": "a", "seed": 0}) as store:
        store.add(TrialRecord(0, "1-1", 1.0, 1, 1, COMPLETED, 0.5))
    with pytest.raises(IncompatibleSearchError, match="seed: recorded 0, requested 1"):
        TrialStore(str(tmp_path), {"space": "a", "seed": 1})
    with TrialStore(str(tmp_path), {"space": "a", "seed": 0}) as store:
        assert len(store.trials()) == 1
