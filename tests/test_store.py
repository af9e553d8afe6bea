import pytest

from layernas_tf.search import Problem
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
    assert summary_counts(trials) == {"completed": 1, "failed": 1, "repeated": 0}


def test_other_settings_are_refused_and_nothing_is_lost(tmp_path):
    with TrialStore(str(tmp_path), {"space": "a", "seed": 0}) as store:
        store.add(TrialRecord(0, "1-1", 1.0, 1, 1, COMPLETED, 0.5))
    with pytest.raises(IncompatibleSearchError, match="seed: recorded 0, requested 1"):
        TrialStore(str(tmp_path), {"space": "a", "seed": 1})
    with TrialStore(str(tmp_path), {"space": "a", "seed": 0}) as store:
        assert len(store.trials()) == 1


def test_a_search_recorded_before_a_setting_existed_resumes_with_its_legacy_value(tmp_path):
    import functools

    from layernas_tf.api import upgrade_recorded
    from layernas_tf.search.layernas import LayerNAS

    current = {"searcher_name": "layernas", "searcher": {"fill": "default", "steps": "attributes",
                                                         "bucket_plan": "per_step", "pick": "lower",
                                                         "prune": "none", "dominated_buckets": "keep",
                                                         "speculate": "believer", "explore": 1.0,
                                                         "batch_picks": "explore", "replicates": 8,
                                                         "replicate_runner_up": True, "race": "expected_loss",
                                                         "bonus_counts": "all"}}
    old = {"searcher_name": "layernas", "searcher": {"fill": "default"}}  # recorded before the twelve keys
    with TrialStore(str(tmp_path), old) as store:
        store.add(TrialRecord(0, "1-1", 1.0, 1, 1, COMPLETED, 0.5))
    upgrade = functools.partial(upgrade_recorded, LayerNAS)
    with pytest.raises(IncompatibleSearchError) as refused:
        TrialStore(str(tmp_path), current, upgrade=upgrade)
    assert ("searcher.batch_picks: recorded 'greedy', requested 'explore'; "
            "searcher.bonus_counts: recorded 'share', requested 'all'; "
            "searcher.bucket_plan: recorded 'upfront', requested 'per_step'; searcher.explore: recorded 0.0, "
            "requested 1.0; searcher.pick: recorded 'blend', "
            "requested 'lower'; searcher.race: recorded 'no_better', requested 'expected_loss'; "
            "searcher.replicate_runner_up: recorded False, requested True; "
            "searcher.replicates: recorded 1, requested 8; searcher.speculate: recorded 'none', "
            "requested 'believer'; searcher.steps: recorded "
            "'layers', requested 'attributes'") in str(refused.value)
    legacy = {"searcher_name": "layernas", "searcher": {"fill": "default", "steps": "layers",
                                                        "bucket_plan": "upfront", "pick": "blend",
                                                        "prune": "none", "dominated_buckets": "keep",
                                                        "speculate": "none", "explore": 0.0,
                                                        "batch_picks": "greedy", "replicates": 1,
                                                        "replicate_runner_up": False, "race": "no_better",
                                                        "bonus_counts": "share"}}
    with TrialStore(str(tmp_path), legacy, upgrade=upgrade) as store:
        assert len(store.trials()) == 1
    with pytest.raises(IncompatibleSearchError, match="searcher.pick: recorded None"):  # no upgrade: refused
        TrialStore(str(tmp_path), legacy)


def test_a_search_with_buckets_planned_from_the_budget_resumes_only_with_num_buckets_0(tmp_path):
    from layernas_tf.search.layernas import LayerNAS

    problem = Problem((2, 2), lambda e: 1.0, 2.0)
    recorded = {"searcher_name": "layernas", "searcher": {**LayerNAS(problem, 10).settings(), "num_buckets": 0}}
    with TrialStore(str(tmp_path), recorded) as store:
        store.add(TrialRecord(0, "1-1", 1.0, 1, 1, COMPLETED, 0.5))
    today = {"searcher_name": "layernas", "searcher": LayerNAS(problem, 10).settings()}
    with pytest.raises(IncompatibleSearchError, match="searcher.num_buckets: recorded 0, requested 1"):
        TrialStore(str(tmp_path), today)
    with TrialStore(str(tmp_path), recorded) as store:
        assert len(store.trials()) == 1


def test_a_repeated_proposal_is_stored_as_a_repeat(tmp_path):
    with TrialStore(str(tmp_path), {"space": "a"}) as store:
        store.add(TrialRecord(0, "1-1", 1.0, 1, 1, COMPLETED, 0.5))
        store.add(TrialRecord(1, "1-1", 1.0, 1, 1, COMPLETED, 0.5, repeat_of=0))
        assert [t.repeat_of for t in store.trials()] == [None, 0]
        assert store.find("1-1").number == 0
        assert summary_counts(store.trials()) == {"completed": 1, "failed": 0, "repeated": 1}


def test_a_store_with_unique_encodings_is_migrated_without_loss(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "trials.sqlite")
    db.execute("CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT)")
    db.execute('INSERT INTO config VALUES ("space", \'"a"\')')
    db.execute("CREATE TABLE trials (number INTEGER PRIMARY KEY, encoding TEXT UNIQUE, cost REAL, madds INTEGER, "
               "params INTEGER, status TEXT, reward REAL, error TEXT, timings TEXT, finished_at REAL)")
    db.execute("INSERT INTO trials VALUES (0, '1-1', 1.0, 1, 1, 'completed', 0.5, '', '{}', 1.0)")
    db.commit()
    db.close()
    with TrialStore(str(tmp_path), {"space": "a"}) as store:
        store.add(TrialRecord(1, "1-1", 1.0, 1, 1, COMPLETED, 0.5, repeat_of=0))
        assert [(t.number, t.encoding, t.reward, t.repeat_of) for t in store.trials()] == [
            (0, "1-1", 0.5, None), (1, "1-1", 0.5, 0)]
