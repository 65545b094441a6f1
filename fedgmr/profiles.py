"""Per-dataset defaults: the paper's hyper-parameters (reference §3.1, §3.8, §4.3, §5.1, §8.2, §9.3).

A run config names a dataset; everything it leaves out comes from that dataset's profile. The offline
stand-ins borrow the profile of the dataset they stand in for (``fmnist`` -> FEMNIST's LEAF CNN set-up,
``changelogs`` -> StackOverflow's), so a demo run exercises the same code path and the same virtual-time
scale as the paper run it imitates.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetProfile:
    name: str
    task: str  # "image" | "lm"
    model: str
    num_classes: int | None  # image classes; None for language modelling
    vocab_size: int | None
    model_size_mb: float  # nominal full-model size used by the virtual clock (reference §3.1)
    local_steps: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    lr_schedule: dict
    loss: str  # "bce_onehot" | "ce"
    interval: int
    max_time: float
    max_rounds: int
    time_budget: float  # table metric budget T (reference §9.3)
    recover_time_total: float  # time-triggered GMR total (reference §1.1)
    comm_coefficient: float
    comp_coefficients: tuple[float, ...]  # per prunable layer (already multiplied by K where the code does)
    normalize_by_layer_mean: bool  # StackOverflow's per-layer score normalisation (§4.3)
    remask_every_step: bool  # ImageNet re-applies masks after each step; SO does not (B6)
    augment: str  # "none" | "cifar" | "imagenet"
    patience: dict = field(default_factory=dict)  # (split, level) -> FedGMR patience (§5.1)
    # The paper dataset whose settings this profile borrows (itself for the paper's own datasets).
    stands_in_for: str = ""

    def __post_init__(self):
        if not self.stands_in_for:
            object.__setattr__(self, "stands_in_for", self.name)


def _k(values: list[float], k: int) -> tuple[float, ...]:
    return tuple(v * k for v in values)


_CIFAR_SINGLE = [
    0,
    8.95507e-6,
    2.495288e-6,
    2.780686e-6,
    1.024265e-6,
    1.277773e-6,
    1.843831e-6,
    8.066104e-7,
    5.145334e-7,
    2.430023e-7,
    0,
]
_FEMNIST_SINGLE = [0, 7.09885e-6, 1.927325e-7, 1.782308e-7]
# ResNet-18: stem conv, 16 block convs, fc (the authors' configs/imagenet100.py, COEFFICIENTS_SINGLE).
_IMAGENET_SINGLE = [
    0.0,
    2.340521716080689e-06,
    1.0023681746470196e-05,
    1.056062089141079e-05,
    4.237937059382076e-06,
    5.6712687899939165e-06,
    2.1231460738533592e-06,
    2.3287953360690104e-06,
    6.735456426708777e-07,
    6.624979740735464e-06,
    5.137498356286562e-07,
    1.9743886037025985e-07,
    3.703237561077147e-08,
    9.910993133200227e-07,
    1.4966532573161931e-06,
    7.477319510700925e-07,
    8.722523120339614e-07,
    6.128180224224039e-06,
]
# The communication coefficient as the authors' configs write it (CIFAR-10, FEMNIST and ImageNet-100).
_COMM = 5.561621025626998e-06
# SO: hand-set priorities, not multiplied by K; positional emb, token emb, then q,k,v,o,ffn1,ffn2 per layer,
# and decoder.linear1 takes the 15th entry (1.0), see reference §4.3. The FFN entries are written 0.6667
# in the authors' config, not 2/3.
_SO_COEFF = (5.0, 0.5) + (1.0, 1.0, 1.0, 1.0, 0.6667, 0.6667) * 2 + (1.0,)


def _patience(table: list[int]) -> dict:
    keys = [
        ("iid", "high"),
        ("iid", "medium"),
        ("iid", "low"),
        ("noniid", "high"),
        ("noniid", "medium"),
        ("noniid", "low"),
    ]
    return {f"{s}_{h}": p for (s, h), p in zip(keys, table)}


PROFILES: dict[str, DatasetProfile] = {}


def _add(p: DatasetProfile) -> None:
    PROFILES[p.name] = p


_add(
    DatasetProfile(
        name="femnist",
        task="image",
        model="leaf_cnn",
        num_classes=62,
        vocab_size=None,
        model_size_mb=25.9811,
        local_steps=5,
        batch_size=20,
        lr=0.25,
        momentum=0.0,
        weight_decay=0.0,
        lr_schedule={"kind": "constant"},
        loss="bce_onehot",
        interval=25,
        max_time=150_000,
        max_rounds=10_001,
        time_budget=70_000,
        recover_time_total=70_000,
        comm_coefficient=_COMM,
        comp_coefficients=_k(_FEMNIST_SINGLE, 5),
        normalize_by_layer_mean=False,
        remask_every_step=False,
        augment="none",
        patience=_patience([5, 4, 3, 7, 3, 1]),
    )
)
_add(
    DatasetProfile(
        name="cifar10",
        task="image",
        model="vgg11",
        num_classes=10,
        vocab_size=None,
        model_size_mb=37.203980445861816,
        local_steps=5,
        batch_size=20,
        lr=0.25,
        momentum=0.0,
        weight_decay=0.0,
        lr_schedule={"kind": "constant"},
        loss="bce_onehot",
        interval=50,
        max_time=305_000,
        max_rounds=20_001,
        time_budget=220_000,
        recover_time_total=220_000,
        comm_coefficient=_COMM,
        comp_coefficients=_k(_CIFAR_SINGLE, 5),
        normalize_by_layer_mean=False,
        remask_every_step=False,
        augment="cifar",
        patience=_patience([10, 25, 1, 15, 30, 1]),
    )
)
_add(
    DatasetProfile(
        name="imagenet100",
        task="image",
        model="resnet18",
        num_classes=100,
        vocab_size=None,
        model_size_mb=43.1007,
        local_steps=5,
        batch_size=20,
        lr=0.02,
        momentum=0.9,
        weight_decay=1e-4,
        lr_schedule={"kind": "step", "step": 2000, "gamma": 0.5**0.2},
        loss="ce",
        interval=50,
        max_time=280_000,
        max_rounds=20_001,
        time_budget=250_000,
        recover_time_total=250_000,
        comm_coefficient=_COMM,
        comp_coefficients=_k(_IMAGENET_SINGLE, 5),
        normalize_by_layer_mean=False,
        remask_every_step=True,
        augment="imagenet",
        patience=_patience([40, 30, 40, 25, 30, 30]),
    )
)
_add(
    DatasetProfile(
        name="stackoverflow",
        task="lm",
        model="transformer_lm",
        num_classes=None,
        vocab_size=10_000,
        model_size_mb=17.26,
        local_steps=10,
        batch_size=16,
        lr=2e-3,
        momentum=0.9,
        weight_decay=1e-4,
        lr_schedule={"kind": "multistep", "milestones": [2500, 5000, 7500], "gamma": 0.5},
        loss="ce",
        interval=25,
        max_time=3_000_000,
        max_rounds=13_001,
        time_budget=70_000,
        recover_time_total=70_000,
        comm_coefficient=0.0,
        comp_coefficients=_SO_COEFF,
        normalize_by_layer_mean=True,
        remask_every_step=False,
        augment="none",
        patience=_patience([15, 20, 8, 10, 10, 20]),
    )
)


def _standin(name: str, like: str, **changes) -> None:
    base = PROFILES[like].__dict__ | {"name": name, "stands_in_for": like} | changes
    _add(DatasetProfile(**base))


# Offline stand-ins: same model family and clock as the dataset they imitate.
_standin("fmnist", "femnist", num_classes=10)
_standin("changelogs", "stackoverflow")
# Generated data for tests: small, quick to learn.
_standin("synthetic_image", "femnist", num_classes=10, time_budget=1_000)
_standin("synthetic_text", "stackoverflow", vocab_size=64, local_steps=5, batch_size=8, time_budget=1_000)


def profile(name: str) -> DatasetProfile:
    return PROFILES[name]
