"""The outside baselines of the quality benchmark (benchmarks/quality_baselines.py) on tiny
hand-built logs whose answers are known. Pure numpy: no database, no services."""

import numpy as np
from scipy import sparse

from benchmarks import quality_baselines as qb

A, B, C, D = range(4)


def log(sequences: dict[int, list[int]], *, negative: set[tuple[int, int]] = frozenset()):
    """Users' positive events in the given order, one second apart; ``negative`` marks
    (user, item) events that are not engagements."""
    users, items, times, positive = [], [], [], []
    for user, sequence in sequences.items():
        for step, item in enumerate(sequence):
            users.append(user)
            items.append(item)
            times.append(float(step))
            positive.append((user, item) not in negative)
    return qb.Interactions(
        user=np.array(users),
        item=np.array(items),
        time=np.array(times),
        positive=np.array(positive),
        user_ids=[str(u) for u in range(max(sequences) + 1)],
        item_ids=["A", "B", "C", "D"],
    )


def test_leave_one_out_holds_out_the_last_positive_event():
    split = qb.leave_one_out(log({0: [A, B, C, D]}, negative={(0, D)}))
    assert split.targets.tolist() == [C]
    assert split.histories[0].tolist() == [A, B]
    assert sorted(split.seen[0].indices.tolist()) == [A, B]
    assert split.train[0].toarray().tolist() == [[1, 1, 0, 0]]  # nothing from the cut on


def test_validation_target_is_the_second_to_last_and_the_last_stays_hidden():
    split = qb.leave_one_out(log({0: [A, B, C, D]}), offset=1)
    assert split.targets.tolist() == [C]
    assert split.train[0].toarray().tolist() == [[1, 1, 0, 0]]


def test_transitions_rank_c_after_b_for_a_strict_a_b_c_sequence():
    # Every user's last event is held out: users 0 and 1 teach A → B → C (then D, hidden).
    data = log({0: [A, B, C, D], 1: [A, B, C, D], 2: [D, A], 3: [A, B, C]})
    split = qb.leave_one_out(data, users=[3])
    scores = qb.transition_scores(split, window=3, last=5, decay=0.7)
    assert qb.target_ranks(scores, split.targets, split.seen).tolist() == [0]
    assert scores[0, C] > scores[0, D]


def test_transitions_follow_the_order_of_events():
    matrix = qb.transition_matrix([np.array([A, B, C])], 4, window=3).toarray()
    assert matrix[B].tolist() == [0, 0, 1, 0]  # B only ever led to C
    assert matrix[C].sum() == 0  # nothing came after C
    assert np.allclose(matrix[A], [0, 2 / 3, 1 / 3, 0])  # B next (1), C two steps on (1/2)


def test_ease_matches_the_closed_form_worked_by_hand():
    # XᵀX + I = [[3,2,1],[2,4,2],[1,2,3]], whose inverse is [[8,-4,0],[-4,8,-4],[0,-4,8]]/16;
    # B_ij = -P_ij / P_jj with a zero diagonal.
    x = sparse.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=float))
    model = qb.ease_fit(x, l2=1.0)
    assert model.items.tolist() == [0, 1, 2]
    assert np.allclose(model.weights, [[0, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0]], atol=1e-6)


def test_ease_gives_items_without_training_events_no_weight():
    x = sparse.csr_matrix(np.array([[1, 0, 1], [1, 0, 1]], dtype=float))
    assert qb.ease_fit(x, l2=1.0).items.tolist() == [0, 2]


def test_text_ranks_the_item_nearest_the_recent_items_first():
    vectors = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.8, 0.2]])
    split = qb.leave_one_out(log({0: [A, B, D]}))
    scores = qb.text_scores(split, vectors, last=5, decay=0.7)
    assert qb.target_ranks(scores, split.targets, split.seen).tolist() == [0]


def test_blend_with_all_weight_on_one_model_is_that_models_ranking():
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(5, 30)), rng.normal(size=(5, 30))
    seen = sparse.csr_matrix(rng.random((5, 30)) < 0.2)
    zscored = {"first": qb.zscores(first, seen), "second": qb.zscores(second, seen)}
    blended = qb.blend(zscored, {"first": 1.0, "second": 0.0})
    for target in range(30):
        targets = np.full(5, target)
        assert np.array_equal(
            qb.target_ranks(blended, targets, seen), qb.target_ranks(first, targets, seen)
        )


def test_metrics_of_a_single_target_follow_its_rank():
    metrics = qb.per_user_metrics(np.array([0, 2, 10]), k=10)
    assert np.allclose(metrics["ndcg@10"], [1.0, 0.5, 0.0])
    assert metrics["recall@10"].tolist() == [1.0, 1.0, 0.0]
    assert np.allclose(metrics["map@10"], [1.0, 1 / 3, 0.0])


def test_bootstrap_intervals_shrink_with_more_users():
    rng = np.random.default_rng(1)
    few = (rng.random(100) < 0.1).astype(float)
    many = (rng.random(10000) < 0.1).astype(float)
    low_few, high_few = qb.bootstrap_interval(few)
    low_many, high_many = qb.bootstrap_interval(many)
    assert low_few <= few.mean() <= high_few
    assert low_many <= many.mean() <= high_many
    assert high_many - low_many < (high_few - low_few) / 3
