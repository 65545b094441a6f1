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


def test_license_is_an_spdx_string_with_a_setuptools_that_reads_it():
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert doc["project"]["license"] == "MIT"  # the table form is refused by setuptools builds after 2027-02-18
    reqs = [_norm(r) for r in doc["build-system"]["requires"]]
    st = [r for r in reqs if r.startswith("setuptools")]
    assert st and re.fullmatch(r"setuptools>=(\d+).*", st[0]) and int(st[0].split(">=")[1].split(",")[0]) >= 77


# Import name of each runtime dependency whose distribution name differs from it.
_IMPORT_NAME = {"pyyaml": "yaml", "pillow": "PIL"}
# Used by Snakemake's validate() of the workflow config against workflow/schemas/, not imported by name.
_INDIRECT = {"jsonschema"}


def test_every_runtime_dependency_is_used_and_test_only_ones_are_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower() for r in project["dependencies"]}
    assert "datasets" not in names and "protobuf" not in names  # parquet is read with pyarrow
    assert any(r.startswith("protobuf") for r in project["optional-dependencies"]["test"])
    code = "\n".join(
        p.read_text()
        for folder in ("fedgmr", "data_prep", "workflow", "paper_figures")
        for p in (ROOT / folder).rglob("*")
        if p.suffix in (".py", ".smk")
    )
    for name in sorted(names - _INDIRECT):
        mod = _IMPORT_NAME.get(name, name)
        assert re.search(rf"^\s*(import|from) {mod}\b", code, re.M), f"{name} is declared but never imported"
