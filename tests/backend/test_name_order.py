"""Naming the pieces of a propagated episode: symbolic and aligned names chosen in the person's order."""

from backend.engines.kinematic.fusion import in_order

ORDER = ["idle", "reach", "grasp", "lift", "place", "release", "retreat", "idle"]


def test_where_both_readings_agree_they_are_the_names():
    options = [(None, "idle", 0, False), ("reach", "reach", 1, False), ("grasp", "grasp", 2, False)]
    assert in_order(options, ORDER) == ["idle", "reach", "grasp"]


def test_a_symbolic_name_that_goes_back_in_the_order_gives_way_to_the_aligned_one():
    """Each arm retreats once: the second retreat's zero-shot name matched the first arm's, whose
    person name is an earlier phase. The aligned names keep the order, so they win there."""
    options = [
        ("place", "place", 4, False),
        ("retreat", "release", 5, False),  # the symbolic name here is a phase early...
        ("place", "retreat", 6, False),  # ... and this one goes back
        ("idle", "idle", 7, False),
    ]
    assert in_order(options, ORDER) == ["place", "release", "retreat", "idle"]


def test_symbolic_names_win_where_they_keep_the_order():
    """The aligned vote misnames a cut the exemplar's own zero-shot analysis missed."""
    options = [("reach", "reach", 1, False), ("grasp", "reach", 1, False), ("lift", "grasp", 2, False)]
    assert in_order(options, ORDER) == ["reach", "grasp", "lift"]


def test_a_retry_the_episode_saw_itself_may_go_back_one_phase():
    """A grasp that closed on nothing, then a new approach: the exemplar had no retry, the
    alignment went astray, and the episode's own zero-shot names show approach, grasp, approach."""
    options = [
        ("reach", "reach", 1, False),
        ("grasp", "grasp", 2, False),
        ("reach", "place", 4, True),
        ("grasp", "release", 5, False),
        (None, "retreat", 6, False),  # the alignment is lost here: no symbolic name either
        ("place", "retreat", 6, False),
        ("release", "release", 5, False),
    ]
    names = in_order(options, ORDER)
    assert names[:4] == ["reach", "grasp", "reach", "grasp"]
    assert names[5:] == ["place", "release"]
    assert names[4] in ("lift", "place")  # between the grasp and the place, whatever the alignment said
    # without the episode's own retry, going back costs more than following the alignment
    unseen = [(s, a, h, False) for s, a, h, _ in options]
    assert in_order(unseen, ORDER)[2] != "reach"


def test_a_name_only_another_exemplar_has_is_kept_where_it_stands():
    options = [("reach", "reach", 1, False), ("grasp", "pinch", 2, False), (None, "pinch", 2, False)]
    assert in_order(options, ORDER) == ["reach", "grasp", "pinch"]
