"""fedgmr: a virtual-time, semi-asynchronous FL simulator for FedGMR and its baselines."""

__version__ = "0.1.0"
