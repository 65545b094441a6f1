"""Hand-computed checks of the staleness weights and their (mis-)indexing (reference §3.7, B2)."""

from __future__ import annotations

import pytest

from fedgmr.staleness import Staleness, staleness_weight


def test_poly_weights():
    # max(1, r - tau)^-0.6: lag 4 -> 4^-0.6 = 2^-1.2 = 0.43527528...; lag 0 counts as 1.
    assert staleness_weight("poly", 0.6, 10, 6) == pytest.approx(0.4352752816480621)
    assert staleness_weight("poly", 0.6, 5, 5) == 1.0
    assert staleness_weight("poly", 0.6, 5, 4) == 1.0
    assert staleness_weight("poly", 0.5, 20, 4) == pytest.approx(0.25)  # 16^-0.5


def test_hinge_and_const():
    # hinge with tau' = tau + 1: r - tau' <= 2 -> 1, else 1 / (a (r - tau' - 2) + 1)
    assert staleness_weight("hinge", 0.5, 10, 7) == 1.0  # r - tau' = 2
    assert staleness_weight("hinge", 0.5, 10, 6) == pytest.approx(2 / 3)  # 3 -> 1/1.5
    assert staleness_weight("hinge", 0.5, 10, 2) == pytest.approx(2 / 7)  # 7 -> 1/3.5
    assert staleness_weight("const", 0.6, 10, 0) == 1.0
    with pytest.raises(ValueError):
        staleness_weight("linear", 0.6, 1, 0)


def test_coefficients_keep_last_value_and_normalise_over_all_clients():
    st = Staleness(num_clients=3, a=0.5)
    assert st.coefficients() == [0.0, 0.0, 0.0]
    assert st.beta([0, 1]) == 0.0
    # Round 8: client 0 dispatched at 4 (lag 4 -> 0.5), client 1 at 8 (lag 0 -> 1).
    st.update(8, [(0, 4), (1, 8)])
    assert st.values == [0.5, 1.0, 0.0]
    assert st.coefficients() == pytest.approx([1 / 3, 2 / 3, 0.0])
    # Round 20: only client 2 arrives, dispatched at 4 (lag 16 -> 0.25); 0 and 1 keep their weights.
    st.update(20, [(2, 4)])
    assert st.values == [0.5, 1.0, 0.25]
    # c = [0.5, 1, 0.25] / 1.75 = [2/7, 4/7, 1/7]
    assert st.coefficients() == pytest.approx([2 / 7, 4 / 7, 1 / 7])


def test_beta_and_misindexed_arrival_coefficients():
    st = Staleness(num_clients=3, a=0.5)
    st.update(20, [(0, 16), (1, 19), (2, 4)])  # lags 4, 1, 16 -> 0.5, 1, 0.25 -> c = [2/7, 4/7, 1/7]
    arriving = [2, 1]  # any order
    assert st.beta(arriving) == pytest.approx(5 / 7)  # c_1 + c_2, correct indices
    assert st.arrival_coefficients(arriving, misindexed=False) == pytest.approx([1 / 7, 4 / 7])
    # B2: in client order the arrivals are (1, 2); the 0th gets c_0 and the 1st gets c_1.
    # So client 2 gets c_1 = 4/7 and client 1 gets c_0 = 2/7 (returned in the order asked).
    assert st.arrival_coefficients(arriving, misindexed=True) == pytest.approx([4 / 7, 2 / 7])
    # When everybody arrives the two agree.
    assert st.arrival_coefficients([0, 1, 2], misindexed=True) == pytest.approx([2 / 7, 4 / 7, 1 / 7])


def test_const_kind_and_state_round_trip():
    st = Staleness(num_clients=4, kind="const")
    st.update(3, [(1, 0), (3, 3)])
    assert st.coefficients() == [0.0, 0.5, 0.0, 0.5]
    other = Staleness(num_clients=4, kind="const")
    other.load_state_dict(st.state_dict())
    assert other.coefficients() == [0.0, 0.5, 0.0, 0.5]
    with pytest.raises(ValueError):
        Staleness(num_clients=4, kind="poly").load_state_dict(st.state_dict())


def test_rejects_bad_clients():
    st = Staleness(num_clients=2)
    with pytest.raises(IndexError):
        st.update(1, [(2, 0)])
    with pytest.raises(ValueError):
        st.beta([1, 1])
