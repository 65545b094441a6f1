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


# Released scripts (reference §1.2-1.5) whose ``args.part`` is the *medium* share vector at every level,
# per paper dataset (§2.1, B28): CMD and ABL for CIFAR-10, ImageNet-100 and StackOverflow, SYN for FEMNIST
# and StackOverflow. Every other script (CMD/ABL FEMNIST, SYN CIFAR-10 and ImageNet-100, all FjORD
# scripts) uses the level's own shares.
_MEDIUM_SHARE_SCRIPTS: dict[str, frozenset[str]] = {
    "CMD": frozenset({"cifar10", "imagenet100", "stackoverflow"}),
    "ABL": frozenset({"cifar10", "imagenet100", "stackoverflow"}),
    "SYN": frozenset({"femnist", "stackoverflow"}),
    "FJT": frozenset(),
}


def released_standard_rule(script: str, dataset: str) -> str:
    """The standard-client rule of the released script that runs a method on a paper dataset (B28).

    Args:
        script: the released entry point of the method family (``Method.script``): CMD, ABL, SYN or FJT.
        dataset: the paper dataset (a stand-in's ``stands_in_for``).

    Returns:
        ``"medium"`` or ``"tier"``, the values :func:`standard_clients` takes.
    """
    if script not in _MEDIUM_SHARE_SCRIPTS:
        raise ValueError(f"unknown released script {script!r}")
    return "medium" if dataset in _MEDIUM_SHARE_SCRIPTS[script] else "tier"
