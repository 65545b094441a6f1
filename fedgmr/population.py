"""The client population: density tiers per heterogeneity level and the standard clients (§2.1, B28)."""

from __future__ import annotations

# Share of clients per tier (1.0 / 0.5 / 0.2 / 0.1 / 0.05), reference §2.1.
SHARES: dict[str, tuple[float, ...]] = {
    "high": (0.1, 0.1, 0.1, 0.1, 0.6),
    "medium": (0.1, 0.1, 0.2, 0.3, 0.3),
    "low": (0.2, 0.2, 0.2, 0.2, 0.2),
}


def client_tiers(num: int, level: str, tiers: list[float]) -> list[float]:
    """Initial density per client, built in tier order: int(share*N) clients of each of the first four
    tiers, the remainder at the last tier. Client 0 is therefore always a full-density client."""
    out: list[float] = []
    for share, density in zip(SHARES[level][:-1], tiers[:-1]):
        out += [float(density)] * int(share * num + 1e-9)
    out += [float(tiers[-1])] * (num - len(out))
    return out


def standard_clients(num: int, level: str, rule: str) -> list[int]:
    """Clients that set the semi-asynchronous deadline: the first int(share_0 * N).

    ``rule='tier'`` uses the level's own shares; ``'medium'`` reproduces the released scripts that use the
    medium shares at every level (one standard client for N = 10, B28).
    """
    shares = SHARES["medium" if rule == "medium" else level]
    return list(range(max(1, int(shares[0] * num + 1e-9))))
