# Runs -> tidy tables -> one rule per paper table or figure -> the reproduction report.
# Paper output rules read only the tidy tables: regenerating a figure never retrains
# (`snakemake fig_ablation --allowed-rules fig_ablation`, or run the script directly, see README).


rule collect:
    input:
        experiment_run_files,
    output:
        table=f"{RESULTS}/tables/{{experiment}}.parquet",
        cells=f"{RESULTS}/tables/{{experiment}}.cells.csv",
    log:
        f"{RESULTS}/logs/collect/{{experiment}}.log",
    conda:
        ENV
    benchmark:
        f"{RESULTS}/benchmarks/collect/{{experiment}}.tsv"
    params:
        cells=experiment_cells_json,
        runs_root=f"{RESULTS}/runs",
    localrule: True
    script:
        "../scripts/collect.py"


for _out_id, _experiment in OUTPUTS.items():

    rule:
        name:
            _out_id
        input:
            table=table_of(_experiment),
            cells=cells_of(_experiment),
            reference=REFERENCE,
            script=f"paper_figures/{_out_id}.py",
        output:
            report(
                paper_output_files(_out_id)[-1],
                category="Figures" if _out_id.startswith("fig_") else "Tables",
                labels={"output": _out_id},
            ),
            paper_output_files(_out_id)[:-1],
        log:
            f"{RESULTS}/logs/paper/{_out_id}.log",
        conda:
            ENV
        benchmark:
            f"{RESULTS}/benchmarks/paper/{_out_id}.tsv"
        params:
            stem=lambda wc, output: str(Path(output[0]).with_suffix("")),
            reference_tables=",".join(GRIDS[_experiment].get("reference", [])) or "none",
        localrule: True
        shell:
            "MPLBACKEND=Agg {PY} {input.script} --table {input.table} --cells {input.cells} "
            "--reference {input.reference} --reference-tables {params.reference_tables} "
            "--out {params.stem} > {log} 2>&1"


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("snakemake", "torch", "numpy", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _git():
    import subprocess

    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + (" with uncommitted changes" if dirty else "")


def _as_text(value):
    """A cell field as text; None and NaN (no fixed density) alike."""
    return "–" if value is None or (isinstance(value, float) and value != value) else str(value)


def scope_info():
    """What this configuration runs: per experiment the grid before and after `subset` and the values the subset
    dropped, plus seeds, datasets, overrides, git sha and versions (the report's Scope section)."""
    experiments = {}
    for name, grid in GRIDS.items():
        full = [c["fields"] for c in G.expand_grid(config, grid)]
        kept = experiment_cells(name)
        subset = dict((config.get("subset") or {}).get("all") or {})
        subset.update((config.get("subset") or {}).get(name) or {})
        dropped = {}
        for field in G.SUBSET_FIELDS:
            values = {_as_text(f[field]) for f in full}
            left = {_as_text(v) for v in kept[field]} if not kept.empty else set()
            dropped[field] = sorted(values - left)
        experiments[name] = {
            "outputs": grid["outputs"], "reference": grid.get("reference", []), "grid_cells": len(full),
            "kept_cells": len(kept), "subset": subset, "dropped_values": dropped,
        }
    datasets = {k: {"engine": v["engine"], "budget": v["budget"], "overrides": v.get("overrides") or {}}
                for k, v in config["datasets"].items()}
    return {"experiments": experiments, "seeds": config["seeds"], "datasets": datasets,
            "run_overrides": config.get("run_overrides") or {}, "git": _git(), "versions": _versions()}


rule scope:
    output:
        f"{RESULTS}/scope.json",
    params:
        scope=json.dumps(scope_info(), sort_keys=True),
    localrule: True
    run:
        Path(output[0]).write_text(params.scope + "\n")


rule claims:
    input:
        tables=[table_of(e) for e in GRIDS],
        claims="config/claims.yaml",
        reference=REFERENCE,
        script="paper_figures/claims.py",
    output:
        csv=f"{RESULTS}/tables/claims.csv",
        md=f"{RESULTS}/tables/claims.md",
    log:
        f"{RESULTS}/logs/claims.log",
    conda:
        ENV
    params:
        stem=lambda wc, output: str(Path(output.csv).with_suffix("")),
    localrule: True
    shell:
        "{PY} {input.script} --claims {input.claims} --tables {input.tables} --reference {input.reference} "
        "--out {params.stem} > {log} 2>&1"


rule report_md:
    input:
        tables=table_outputs(),
        figures=figure_outputs(),
        cells=[cells_of(e) for e in GRIDS],
        claims=f"{RESULTS}/tables/claims.csv",
        scope=f"{RESULTS}/scope.json",
        reference=REFERENCE,
        script="paper_figures/report.py",
    output:
        report(f"{RESULTS}/report.md", category="Report"),
    log:
        f"{RESULTS}/logs/report_md.log",
    conda:
        ENV
    benchmark:
        f"{RESULTS}/benchmarks/report_md.tsv"
    params:
        results=lambda wc, output: str(Path(output[0]).parent),
    localrule: True
    shell:
        "{PY} {input.script} --results {params.results} --tables {input.tables} "
        "--cells {input.cells} --figures {input.figures} --claims {input.claims} --scope {input.scope} "
        "--reference {input.reference} --out {output} > {log} 2>&1"


onsuccess:
    if Path(f"{RESULTS}/report.md").exists():
        logger.info(f"fedgmr-repro: report at {RESULTS}/report.md")
