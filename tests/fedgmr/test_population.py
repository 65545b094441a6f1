from fedgmr.population import client_tiers, standard_clients

T = [1.0, 0.5, 0.2, 0.1, 0.05]


def test_tiers_match_reference_lists():
    assert client_tiers(10, "high", T) == [1, 0.5, 0.2, 0.1] + [0.05] * 6
    assert client_tiers(10, "medium", T) == [1, 0.5, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05]
    assert client_tiers(10, "low", T) == [1, 1, 0.5, 0.5, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]
    # mean densities quoted in the reference: 0.21 / 0.235 / 0.37
    for level, mean in (("high", 0.21), ("medium", 0.235), ("low", 0.37)):
        assert abs(sum(client_tiers(10, level, T)) / 10 - mean) < 1e-12


def test_standard_clients_released_vs_tier():
    assert standard_clients(10, "low", "tier") == [0, 1]
    assert standard_clients(10, "low", "medium") == [0]  # B28: one standard client at every level
    assert standard_clients(10, "high", "tier") == [0]
    assert standard_clients(3, "high", "tier") == [0]  # never zero
