"""Staleness weights of asynchronous arrivals (reference §3.7, `PRF` ``calculate_staleness`` L1212).

For an arrival in round ``r`` of a model dispatched in round ``tau``:

* ``poly`` (the paper's default): ``s = max(1, r − tau)^(−a)``, ``a = 0.6``;
* ``const``: ``s = 1``;
* ``hinge``: with ``tau' = tau + 1``, ``s = 1`` if ``r − tau' ≤ 2`` else ``1 / (a (r − tau' − 2) + 1)``.

``s_i`` is stored per client and keeps its last value while the client does not arrive (0 until its
first arrival). Coefficients are normalised over *all* clients, ``c_i = s_i / Σ_k s_k``, and the mixing
weight of a round is ``β = Σ_{i∈A} c_i``.

The released aggregation reads the coefficients with the wrong index (B2): the k-th arrival in client
order gets ``c_k``, the coefficient of client *k*. :meth:`Staleness.arrival_coefficients` gives both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["KINDS", "Staleness", "staleness_weight"]

KINDS = ("poly", "const", "hinge")


def staleness_weight(kind: str, a: float, round_: int, dispatch_round: int) -> float:
    """The un-normalised weight ``s`` of one arrival (see the module docstring).

    Args:
        kind: ``"poly"``, ``"const"`` or ``"hinge"``.
        a: the exponent (poly) or slope (hinge).
        round_: the round in which the model arrives.
        dispatch_round: the round in which the model was sent to the client.
    """
    lag = round_ - dispatch_round
    if kind == "poly":
        # A lag of 0 (possible at start-up) counts as 1, so s <= 1 always.
        return float(max(1, lag)) ** (-a)
    if kind == "const":
        return 1.0
    if kind == "hinge":
        # The released code measures the hinge from tau + 1 (its payload carries dispatch_round + 1).
        lag -= 1
        return 1.0 if lag <= 2 else 1.0 / (a * (lag - 2) + 1.0)
    raise ValueError(f"unknown staleness kind {kind!r}; expected one of {KINDS}")


class Staleness:
    """Per-client staleness weights and their normalised coefficients.

    Args:
        num_clients: N, the number of clients the coefficients are normalised over.
        kind: ``"poly"``, ``"const"`` or ``"hinge"``.
        a: the exponent (poly) or slope (hinge); 0.6 in every paper run.
    """

    def __init__(self, num_clients: int, kind: str = "poly", a: float = 0.6):
        if kind not in KINDS:
            raise ValueError(f"unknown staleness kind {kind!r}; expected one of {KINDS}")
        if num_clients < 1:
            raise ValueError(f"num_clients must be >= 1, got {num_clients}")
        self.kind = kind
        self.a = float(a)
        self.num_clients = num_clients
        self.values: list[float] = [0.0] * num_clients

    def update(self, round_: int, arrivals: Iterable[tuple[int, int]]) -> None:
        """Store the weight of every arriving client; the others keep their last weight.

        Args:
            round_: the current server round r.
            arrivals: ``(client, dispatch_round)`` for each arrival of this round.
        """
        for client, dispatch_round in arrivals:
            self._check_client(client)
            self.values[client] = staleness_weight(self.kind, self.a, round_, dispatch_round)

    def coefficients(self) -> list[float]:
        """``c_i = s_i / Σ_k s_k`` over all clients (all 0 before the first arrival)."""
        total = sum(self.values)
        if total == 0.0:
            return [0.0] * self.num_clients
        return [s / total for s in self.values]

    def beta(self, arriving_clients: Iterable[int]) -> float:
        """Mixing weight ``β = Σ_{i∈A} c_i`` with correct indices (§3.7; used by the ``mix`` rule)."""
        c = self.coefficients()
        clients = self._unique(arriving_clients)
        return float(sum(c[i] for i in clients))

    def arrival_coefficients(self, arriving_clients: Sequence[int], misindexed: bool) -> list[float]:
        """The coefficient each arrival gets in aggregation, in the order of ``arriving_clients``.

        Args:
            arriving_clients: the clients that arrived this round (each at most once, any order).
            misindexed: ``True`` reproduces the released code (B2): the arrival whose client is the
                k-th smallest arriving id gets ``c_k``, the coefficient of client ``k``. ``False`` gives
                each arrival its own ``c_i``.
        """
        c = self.coefficients()
        clients = self._unique(arriving_clients)
        if not misindexed:
            return [c[i] for i in clients]
        rank = {client: k for k, client in enumerate(sorted(clients))}
        return [c[rank[i]] for i in clients]

    def _unique(self, clients: Iterable[int]) -> list[int]:
        out = list(clients)
        for i in out:
            self._check_client(i)
        if len(set(out)) != len(out):
            raise ValueError(f"a client arrives at most once per round, got {out}")
        return out

    def _check_client(self, client: int) -> None:
        if not 0 <= client < self.num_clients:
            raise IndexError(f"client {client} out of range [0, {self.num_clients})")

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "values": list(self.values)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        values = [float(v) for v in state["values"]]
        if len(values) != self.num_clients:
            raise ValueError(f"state has {len(values)} clients, expected {self.num_clients}")
        if state.get("kind", self.kind) != self.kind or float(state.get("a", self.a)) != self.a:
            raise ValueError("staleness state was saved with a different kind or exponent")
        self.values = values
