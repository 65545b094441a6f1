"""Virtual-time network and event model of the FedGMR simulator.

Reference: the event loop of the authors' ``FedMapFL`` (reference spec ``official-code.md`` §3, §10 B1, B10, B25,
B28, B29, B30). This module is a pure state machine: it decides who trains, whose upload arrives, which downloads
carry over and how far the server clock ``T`` advances. It never touches a model; the engine does the training,
aggregation and restoration between the calls.

One loop iteration (one reference "server round") is driven by the engine as::

    trained = net.begin_iteration()          # A: free clients train (each costs compute_time virtual seconds)
    ...train `trained`...
    arrivals = net.collect(densities)        # B, C: uploads, the deadline, the clock
    ...aggregate arrivals with staleness max(1, net.round - a.dispatch_round); tick work...
    result = net.dispatch(new_densities)     # E, F: merge time, downloads, next preliminary deadline
    stop if net.time > max_time or net.round > max_round

Units: sizes in MB, speeds in MB/s, times in virtual seconds. A model of nominal density ``rho`` costs
``model_size_mb * rho`` MB in both directions (§3.1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Preliminary deadline before the first dispatch (reference ``threshold = 10000``): everyone arrives in round 0.
INITIAL_DEADLINE = 10_000.0
#: Sync mode sets the next deadline to ``T + SYNC_CAP`` (B30); a cap, not "wait for everyone".
SYNC_CAP = 1000.0
#: A client that is still downloading uploads nothing; the reference parks its receive time this far past Theta.
PARKED_OFFSET = 1000.0
#: A cut transfer keeps at least this many MB outstanding, so that it stays "busy" (reference floor 0.001).
MIN_REMAINING = 0.001
#: Below this many MB a client has pushed its whole upload (the reference's float-noise tolerance in ``cts``).
PUSH_EPS = 1e-9
#: Format version of :meth:`Network.state_dict`.
STATE_VERSION = 1


@dataclass
class NetworkSpec:
    """Static description of the simulated network (reference §2.1, §2.2, §3.1–§3.6).

    Attributes:
        model_size_mb: S, the size of the dense model in MB; a model of density rho costs S*rho MB (§3.1).
        tiers: initial density of each client; it fixes the client's bandwidth for the whole run (§2.2).
        standard: the clients whose uploads set the semi-asynchronous deadline (§2.1, B28).
        sync: chronous 'syn' mode (deadline = T + 1000, so everyone arrives; §3.5, B30) instead of semi-async.
        ims: IMS download accounting (§3.6) instead of sequential sends of each distinct sub-model size.
        compute_time: virtual seconds of one local training job; the reference also uses this value
            (``asyn_interval``) for the server merge time and the grace after the last standard upload.
        server_up: mean server upload speed (MB/s).
        server_down: mean server download speed (MB/s).
        client_down: mean client download speed per unit of initial density (MB/s).
        client_up: mean client upload speed per unit of initial density (MB/s).
        client_sigma: log-normal sigma of a client speed draw.
        server_sigma: log-normal sigma of a server speed draw.
        draws: each speed is the mean of this many i.i.d. log-normal draws, redrawn every iteration (§3.2).
        phantom_arrivals: B1 as released: a model trained this iteration is aggregated now even if its upload is
            unfinished (and again when it completes). False: aggregate only on upload completion.
        released_startup: B29 as released: at r = 1 every upload is cut at the round-0 preliminary deadline and
            round 2 spans two iterations. False: the deadline is extended from r = 1 on (clean start-up).
        seed: seed of the network's own ``np.random.RandomState``, separate from every other RNG (§3.2).
    """

    model_size_mb: float
    tiers: list[float]
    standard: list[int]
    sync: bool
    ims: bool
    compute_time: float = 0.5
    server_up: float = 10.0
    server_down: float = 50.0
    client_down: float = 20.0
    client_up: float = 5.0
    client_sigma: float = 0.3
    server_sigma: float = 0.1
    draws: int = 20
    phantom_arrivals: bool = True
    released_startup: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        self.tiers = [float(t) for t in self.tiers]
        self.standard = [int(s) for s in self.standard]
        n = len(self.tiers)
        if n == 0:
            raise ValueError("NetworkSpec.tiers is empty: the network needs at least one client")
        if any(not (t > 0.0) for t in self.tiers):
            raise ValueError(f"NetworkSpec.tiers must be positive densities, got {self.tiers}")
        if any(not 0 <= s < n for s in self.standard) or len(set(self.standard)) != len(self.standard):
            raise ValueError(
                f"NetworkSpec.standard must be distinct client indices in [0, {n}), got {self.standard}"
            )
        if not self.sync and not self.standard:
            raise ValueError("a semi-asynchronous network needs at least one standard client")
        if self.model_size_mb <= 0 or self.draws < 1:
            raise ValueError("NetworkSpec.model_size_mb must be > 0 and draws >= 1")
        if min(self.server_up, self.server_down, self.client_down, self.client_up) <= 0:
            raise ValueError("NetworkSpec speeds must be positive")


@dataclass
class Arrival:
    """One model that the server aggregates in this iteration.

    Attributes:
        client: the client index.
        dispatch_round: tau, the round whose dispatch (step E) sent the model this client trained; -1 for the
            initial model. The engine weighs the arrival with staleness max(1, round - tau).
        kind: "fresh" (trained this iteration and received by the deadline), "phantom" (trained this iteration,
            upload unfinished; only with ``phantom_arrivals``) or "late" (the upload of an earlier training
            completed now; the engine aggregates the payload it stored when that training ran).
    """

    client: int
    dispatch_round: int
    kind: str


@dataclass
class Dispatch:
    """Outcome of the server-to-client step of one iteration.

    Attributes:
        load_now: free clients whose download completes by the deadline: they load the CURRENT model now.
        deferred: free clients whose download carries over: they will receive THIS round's model later, so the
            engine snapshots it for them now.
        delivered: clients whose carried-over download completed now: they load the snapshot stored when it
            started.
        deadline: the next preliminary deadline Theta.
        download_time: per-client download time from T used by this step (0 for busy uploaders).
    """

    load_now: list[int]
    deferred: list[int]
    delivered: list[int]
    deadline: float = 0.0
    download_time: list[float] = field(default_factory=list)


@dataclass
class Speeds:
    """The speeds of one iteration (MB/s); drawn once in :meth:`Network.collect`, reused by the dispatch."""

    server_up: float
    server_down: float
    down: list[float]
    up: list[float]


def fifo_receive_times(
    start: list[float], size: list[float], up: list[float], server_down: float
) -> list[float]:
    """Times at which the server has fully received each upload (the reference's ``cts``, ``SUB`` L785).

    Every client pushes its bytes into a shared pipe at its own upload speed from its start time on; the server
    drains the pipe at ``server_down``, serving buffered bytes in the order in which the transmissions started
    (ties by client index). Time advances between events (each start and each push completion); when no event
    is left, one final interval drains the rest. A client counts as received at the END of the interval in which
    its last byte left the pipe. That coarse rule is the reference's; it is exact whenever the server keeps up,
    which holds for the configured speeds (sum of client uploads << 50 MB/s).

    Args:
        start: transmission start time of each client.
        size: MB each client still has to upload (0 is allowed: such a client is received at its start,
            unless the pipe ahead of it is backlogged).
        up: upload speed of each client.
        server_down: server download speed.

    Returns:
        The receive time of each client.
    """
    n = len(start)
    remaining = [float(s) for s in size]
    buffered = [0.0] * n
    # 0 = not started, 1 = pushing, 2 = pushed (bytes may still sit in the pipe), 3 = received
    state = [0] * n
    received = [0.0] * n
    fifo: list[int] = []
    events = sorted([float(t) for t in start] + [start[i] + remaining[i] / up[i] for i in range(n)])
    now, nxt, k = events[0], events[1], 2
    while True:
        dt = nxt - now
        for i in range(n):
            if state[i] == 0 and now == start[i]:
                state[i] = 1
                fifo.append(i)
            if state[i] == 1:
                pushed = min(up[i] * dt, remaining[i])
                buffered[i] += pushed
                remaining[i] -= pushed
                if remaining[i] < PUSH_EPS:
                    state[i] = 2
        capacity = server_down * dt
        for j in fifo:
            if capacity >= buffered[j]:
                capacity -= buffered[j]
                buffered[j] = 0.0
                if state[j] == 2:
                    state[j] = 3
                    received[j] = nxt
            else:
                # the head of the queue absorbs what is left; later clients wait (first come, first served)
                buffered[j] -= capacity
                break
        now = nxt
        if k < len(events):
            nxt = events[k]
            k += 1
        else:
            nxt = now + max((sum(buffered) + sum(remaining)) / server_down, 0.001)
        if all(s == 3 for s in state):
            return received


class Network:
    """The virtual-time state machine of one simulation (see the module docstring for the call order).

    Public state (read it, do not write it):
        time: the server clock T.
        round: r, ``train_number[0]`` at the start of the iteration (client 0 is a standard client in every
            reference configuration, so it trains in every iteration except the B29 repeat of round 2).
        new_round: False when this iteration repeats the previous iteration's round (B29); the engine must not
            tick twice for one round.
        train_number: local trainings completed per client.
        deadline: the preliminary deadline Theta of the next collect.
        free: per client, True when it is neither uploading nor downloading.
        model_round: per client, tau of the model it currently holds.
        mb_up / mb_down: cumulative MB sent by the clients / by the server.
    """

    def __init__(self, spec: NetworkSpec) -> None:
        self.spec = spec
        n = len(spec.tiers)
        self.n = n
        self.rng = np.random.RandomState(spec.seed)
        self.time = 0.0
        self.round = 0
        self.new_round = True
        self.deadline = INITIAL_DEADLINE
        self.train_number = [0] * n
        self.free = [True] * n
        self.upload_left = [0.0] * n  # U_i, MB still to upload
        self.download_left = [0.0] * n  # D_i, MB still to download
        # t_recv_i: when the client last finished a download (or, when busy, when its transfer resumes)
        self.t_recv = [0.0] * n
        self.model_round = [-1] * n  # tau of the model the client holds (-1: the initial model)
        self.pending_round = [-1] * n  # tau of the model a carried-over download is delivering
        self.payload_round = [-1] * n  # tau of the client's last trained upload (for its late arrival)
        self.trained = [False] * n  # who trained in the current iteration
        self.mb_up = 0.0
        self.mb_down = 0.0
        self.speeds: Speeds | None = None
        self._prev_round = -1
        self._phase = "idle"  # idle -> trained -> collected -> idle

    # ------------------------------------------------------------------ step A
    def begin_iteration(self) -> list[int]:
        """Start one loop iteration: set ``round`` and return the clients that train now.

        The free clients train (each job costs ``compute_time``); their ``train_number`` is incremented and the
        tau of the model they trained is remembered for their arrival.

        Returns:
            The indices of the clients that train in this iteration (possibly empty, B29).
        """
        self._expect("idle", "begin_iteration")
        self.round = self.train_number[0]
        self.new_round = self.round != self._prev_round
        self._prev_round = self.round
        trained = [i for i in range(self.n) if self.free[i]]
        self.trained = [False] * self.n
        for i in trained:
            self.trained[i] = True
            self.train_number[i] += 1
            self.payload_round[i] = self.model_round[i]
        self._phase = "trained"
        return trained

    # ------------------------------------------------------------------ steps B and C
    def collect(self, densities: list[float]) -> list[Arrival]:
        """Uploads (step B) and the deadline (step C); advances the clock.

        Args:
            densities: the current nominal density of each client on the server side; a client that trained now
                uploads ``S * densities[i]`` MB even if it trained a model of another density (B25).

        Returns:
            The arrivals, in client order; a client appears at most once.
        """
        self._expect("trained", "collect")
        spec, n = self.spec, self.n
        dens = self._check_densities(densities)
        sp = self._draw_speeds()
        self.speeds = sp
        c = spec.compute_time

        starts = [0.0] * n
        for i in range(n):
            if self.trained[i]:
                size = spec.model_size_mb * dens[i]
                self.upload_left[i] += size
                self.mb_up += size
                starts[i] = self.t_recv[i] + c  # upload starts once the local job is done
            else:
                starts[i] = self.t_recv[i]  # a busy transfer resumes where the last dispatch left it
        recv = fifo_receive_times(starts, list(self.upload_left), sp.up, sp.server_down)
        close = list(recv)

        theta = self.deadline
        arrived = [False] * n
        for i in range(n):
            if self.trained[i] or self.upload_left[i] > 0:
                if recv[i] > theta:
                    self.free[i] = False
                    self.upload_left[i] = max(
                        self.upload_left[i] - sp.up[i] * (theta - starts[i]), MIN_REMAINING
                    )
                    close[i] = theta
                else:
                    self.upload_left[i] = 0.0
                    self.free[i] = True
                    arrived[i] = True
            if self.download_left[i] > 0:
                # kept as released: a downloading standard client would push the async deadline out with it
                recv[i] = theta + PARKED_OFFSET

        if spec.sync or self.round < (2 if spec.released_startup else 1):
            # round 0 (Theta = 10,000), the released round 1 (B29) and every sync round: the clock jumps to the
            # last transfer that closed; cut uploads keep their remaining bytes
            self.time = max(close)
        else:
            new_deadline = max(recv[j] for j in spec.standard) + c
            extra = new_deadline - theta  # may be negative; the reference applies it with its sign
            for i in range(n):
                if self.free[i]:
                    continue
                if self.download_left[i] > 0:
                    if self.download_left[i] <= sp.down[i] * extra:
                        self.download_left[i] = MIN_REMAINING
                    else:
                        self.download_left[i] -= sp.down[i] * extra
                if self.upload_left[i] > 0:
                    if recv[i] <= new_deadline:
                        self.upload_left[i] = 0.0
                        self.free[i] = True
                        arrived[i] = True
                    else:
                        self.upload_left[i] -= sp.up[i] * extra
                        if self.upload_left[i] < 0:
                            self.upload_left[i] = MIN_REMAINING
            self.deadline = new_deadline
            self.time = new_deadline

        arrivals = []
        for i in range(n):
            if self.trained[i]:
                if arrived[i]:
                    arrivals.append(Arrival(i, self.payload_round[i], "fresh"))
                elif spec.phantom_arrivals:
                    arrivals.append(Arrival(i, self.payload_round[i], "phantom"))
            elif arrived[i]:
                arrivals.append(Arrival(i, self.payload_round[i], "late"))
        self._phase = "collected"
        return arrivals

    # ------------------------------------------------------------------ steps E and F
    def dispatch(self, densities: list[float], ims_densities: list[float] | None = None) -> Dispatch:
        """Server merge time, downloads of the current sub-models, the next preliminary deadline (steps E, F).

        Args:
            densities: the current nominal density of each client (after this iteration's restoration); a free
                client downloads ``S * densities[i]`` MB.
            ims_densities: the densities whose sorted increments size the IMS broadcast. As released (B10) these
                lag one tick: during rounds [kI, (k+1)I) they are the densities set at tick k-1, all zeros before
                tick 1. None means ``densities`` (the clean choice). Ignored without IMS.

        Returns:
            Who loads the current model now, whose download carries over and whose carried-over download ended.
        """
        self._expect("collected", "dispatch")
        spec, n = self.spec, self.n
        sp = self.speeds
        assert sp is not None
        dens = self._check_densities(densities)
        size_mb = spec.model_size_mb
        c = spec.compute_time

        free = [i for i in range(n) if self.free[i]]
        if free:
            self.time += c  # server merge time, charged only when somebody arrived
        t_now = self.time

        download = [0.0] * n
        if spec.ims:
            # every client receives its nested prefix concurrently at min(server up, own down) (§3.6)
            for i in range(n):
                download[i] = size_mb * dens[i] / min(sp.server_up, sp.down[i])
            sent = 0.0
            if free:
                ranks = self._ascending_ranks(dens)
                highest = max(ranks[i] for i in free)
                base = sorted(self._check_densities(ims_densities) if ims_densities is not None else dens)
                increments = [size_mb * (base[k] - (base[k - 1] if k else 0.0)) for k in range(n)]
                sent = sum(increments[: highest + 1])
            server_busy = sent / sp.server_up
        else:
            # each distinct size is sent once, smallest first; a client waits for all smaller ones
            sizes = [size_mb * dens[i] if self.free[i] else 0.0 for i in range(n)]
            server_busy = 0.0
            sent = 0.0
            for value in sorted(set(sizes)):
                for j in range(n):
                    if sizes[j] == value:
                        download[j] = server_busy + value / min(sp.server_up, sp.down[j])
                server_busy += value / sp.server_up
                sent += value
        self.mb_down += sent
        for i in range(n):
            if not self.free[i]:
                download[i] = self.download_left[i] / sp.down[i]

        if spec.sync:
            theta = t_now + SYNC_CAP
        else:
            theta = t_now + max(max(download[j] for j in spec.standard), server_busy) + c
        self.deadline = theta

        load_now: list[int] = []
        deferred: list[int] = []
        delivered: list[int] = []
        for i in range(n):
            if self.free[i]:
                if t_now + download[i] > theta:
                    self.download_left[i] = max(MIN_REMAINING, (t_now + download[i] - theta) * sp.down[i])
                    self.free[i] = False
                    self.pending_round[i] = self.round
                    self.t_recv[i] = theta
                    deferred.append(i)
                else:
                    self.download_left[i] = 0.0
                    self.model_round[i] = self.round
                    self.t_recv[i] = t_now + download[i]
                    load_now.append(i)
            elif self.download_left[i] > 0:
                if t_now + download[i] > theta:
                    self.download_left[i] = max(
                        MIN_REMAINING, self.download_left[i] - sp.down[i] * (theta - t_now)
                    )
                    self.t_recv[i] = theta
                else:
                    self.download_left[i] = 0.0
                    self.free[i] = True
                    self.model_round[i] = self.pending_round[i]
                    self.t_recv[i] = t_now + download[i]
                    delivered.append(i)
            else:
                self.t_recv[i] = t_now  # busy uploader: resumes after the merge
        self.round = self.train_number[0]  # so that the engine's stop check sees the next round
        self._phase = "idle"
        return Dispatch(load_now, deferred, delivered, theta, download)

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything needed for an exact resume, as plain Python (safe for ``torch.load(weights_only=True)``)."""
        kind, keys, pos, has_gauss, cached = self.rng.get_state()
        return {
            "version": STATE_VERSION,
            "spec": asdict(self.spec),
            "rng": {
                "kind": str(kind),
                "keys": [int(k) for k in keys],
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached),
            },
            "time": self.time,
            "round": self.round,
            "new_round": self.new_round,
            "deadline": self.deadline,
            "train_number": list(self.train_number),
            "free": list(self.free),
            "upload_left": list(self.upload_left),
            "download_left": list(self.download_left),
            "t_recv": list(self.t_recv),
            "model_round": list(self.model_round),
            "pending_round": list(self.pending_round),
            "payload_round": list(self.payload_round),
            "trained": list(self.trained),
            "mb_up": self.mb_up,
            "mb_down": self.mb_down,
            "speeds": asdict(self.speeds) if self.speeds is not None else None,
            "prev_round": self._prev_round,
            "phase": self._phase,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict` of a network with the same spec.

        Raises:
            ValueError: the state has another format version or was written for a different spec.
        """
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"network state has version {d.get('version')}, expected {STATE_VERSION}")
        if d["spec"] != asdict(self.spec):
            raise ValueError("network state was saved with a different NetworkSpec; refusing to resume")
        r = d["rng"]
        self.rng.set_state(
            (r["kind"], np.array(r["keys"], dtype=np.uint32), r["pos"], r["has_gauss"], r["cached_gaussian"])
        )
        self.time = float(d["time"])
        self.round = int(d["round"])
        self.new_round = bool(d["new_round"])
        self.deadline = float(d["deadline"])
        self.train_number = [int(x) for x in d["train_number"]]
        self.free = [bool(x) for x in d["free"]]
        self.upload_left = [float(x) for x in d["upload_left"]]
        self.download_left = [float(x) for x in d["download_left"]]
        self.t_recv = [float(x) for x in d["t_recv"]]
        self.model_round = [int(x) for x in d["model_round"]]
        self.pending_round = [int(x) for x in d["pending_round"]]
        self.payload_round = [int(x) for x in d["payload_round"]]
        self.trained = [bool(x) for x in d["trained"]]
        self.mb_up = float(d["mb_up"])
        self.mb_down = float(d["mb_down"])
        self.speeds = Speeds(**d["speeds"]) if d["speeds"] is not None else None
        self._prev_round = int(d["prev_round"])
        self._phase = str(d["phase"])

    # ------------------------------------------------------------------ helpers
    def _draw_speeds(self) -> Speeds:
        """Redraw all speeds for this iteration, in the reference's order (``get_internet_speed``).

        Order of the draws: ``draws`` pairs (server up, server down), then per client ``draws`` pairs
        (download, upload). One vectorised standard-normal draw gives the same stream as the reference's
        scalar ``lognormal`` calls, and ``math.exp`` matches its C ``exp`` bit for bit.
        """
        spec, n, m = self.spec, self.n, self.spec.draws
        z = self.rng.standard_normal(2 * m * (n + 1)).tolist()
        s_srv, s_cli = spec.server_sigma, spec.client_sigma
        server_up = 0.0
        server_down = 0.0
        for k in range(m):
            server_up += math.exp(s_srv * z[2 * k]) * spec.server_up
            server_down += math.exp(s_srv * z[2 * k + 1]) * spec.server_down
        down, up = [], []
        for i in range(n):
            mean_down = spec.client_down * spec.tiers[i]
            mean_up = spec.client_up * spec.tiers[i]
            base = 2 * m * (i + 1)
            d_sum = 0.0
            u_sum = 0.0
            for k in range(m):
                d_sum += math.exp(s_cli * z[base + 2 * k]) * mean_down
                u_sum += math.exp(s_cli * z[base + 2 * k + 1]) * mean_up
            down.append(d_sum / m)
            up.append(u_sum / m)
        return Speeds(server_up / m, server_down / m, down, up)

    @staticmethod
    def _ascending_ranks(densities: list[float]) -> list[int]:
        """Rank of each client in the ascending order of densities (ties by client index)."""
        order = sorted(range(len(densities)), key=lambda i: densities[i])
        ranks = [0] * len(densities)
        for rank, i in enumerate(order):
            ranks[i] = rank
        return ranks

    def _check_densities(self, densities: list[float]) -> list[float]:
        if len(densities) != self.n:
            raise ValueError(f"expected {self.n} densities, got {len(densities)}")
        return [float(x) for x in densities]

    def _expect(self, phase: str, call: str) -> None:
        if self._phase != phase:
            order = "begin_iteration -> collect -> dispatch"
            raise RuntimeError(f"Network.{call} called out of order (state '{self._phase}'; order: {order})")
