"""environment.yml must list exactly what pyproject.toml installs (there is no conda here to try it)."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= set(extra)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {p for p in pip if not p.startswith("-e")}
    assert {_norm(r) for r in listed} == {_norm(r) for r in wanted}
    assert "-e ." in pip
    py = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python=")]
    assert py and py[0].split("=")[1].startswith("3.11")
