"""Every client at one given density, no restoration: the motivation experiment of the FedGMR paper
(growth rate of accuracy per unit of virtual time against accuracy, for densities 0.025 … 1.0).

Runs on the FedGMR machinery (async deadline, IMS, MA) with restoration off; bandwidth still follows
each client's tier, so small densities buy short rounds.
"""

from fedgmr.errors import ConfigError
from fedgmr.methods.base import Method
from fedgmr.methods.registry import register


class FixedDensity(Method):
    def resolve(self, cfg: dict) -> None:
        if cfg["fixed_density"] is None:
            raise ConfigError("fixed_density: required by method 'fixed_density' (a density in (0, 1])")
        if cfg["fixed_density"] <= 0:
            raise ConfigError("fixed_density: must be > 0")
        cfg["restoration"]["min_density"] = cfg["fixed_density"]
        super().resolve(cfg)

    def initial_densities(self, cfg: dict, tiers: list[float]) -> list[float]:
        return [cfg["fixed_density"]] * len(tiers)


register(
    FixedDensity(
        "fixed_density",
        "all clients at one fixed density, no restoration",
        "fixed density",
        recover=False,
        client_triggers=False,
    )
)
