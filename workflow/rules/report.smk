# Runs -> tidy tables -> one rule per paper table or figure -> claims, scope -> the reproduction report.
# Paper output rules read only the tidy tables: regenerating a figure never retrains
# (`snakemake fig_ablation --allowed-rules fig_ablation`, or run the script directly, see README).

from scope import scope_info  # workflow/lib (on sys.path via common.smk)

PAPER_HELPERS = [f"paper_figures/{m}.py" for m in ("common", "metrics", "health", "curves", "style")]


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
            # Shared modules of the scripts: a change in the metric or the flags redraws every output.
            helpers=PAPER_HELPERS,
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
            py=PY,
            stem=lambda wc, output: str(Path(output[0]).with_suffix("")),
            reference_tables=",".join(GRIDS[_experiment].get("reference", [])) or "none",
        localrule: True
        shell:
            "MPLBACKEND=Agg {params.py} {input.script} --table {input.table} --cells {input.cells} "
            "--reference {input.reference} --reference-tables {params.reference_tables} "
            "--out {params.stem} > {log} 2>&1"


rule scope:
    output:
        f"{RESULTS}/scope.json",
    log:
        f"{RESULTS}/logs/scope.log",
    params:
        scope=json.dumps(scope_info(config, GRIDS, CELLS_DF), sort_keys=True),
    localrule: True
    run:
        Path(output[0]).write_text(f"{params.scope}\n")
        Path(log[0]).write_text(f"wrote {output[0]}\n")


rule claims:
    input:
        tables=[table_of(e) for e in GRIDS],
        claims="config/claims.yaml",
        reference=REFERENCE,
        script="paper_figures/claims.py",
        helpers=PAPER_HELPERS,
    output:
        csv=f"{RESULTS}/tables/claims.csv",
        md=f"{RESULTS}/tables/claims.md",
    log:
        f"{RESULTS}/logs/claims.log",
    conda:
        ENV
    params:
        py=PY,
        stem=lambda wc, output: str(Path(output.csv).with_suffix("")),
    localrule: True
    shell:
        "{params.py} {input.script} --claims {input.claims} --tables {input.tables} --reference {input.reference} "
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
        helpers=PAPER_HELPERS + ["paper_figures/claims.py"],
    output:
        report(f"{RESULTS}/report.md", category="Report"),
    log:
        f"{RESULTS}/logs/report_md.log",
    conda:
        ENV
    benchmark:
        f"{RESULTS}/benchmarks/report_md.tsv"
    params:
        py=PY,
        results=lambda wc, output: str(Path(output[0]).parent),
    localrule: True
    shell:
        "{params.py} {input.script} --results {params.results} --tables {input.tables} "
        "--cells {input.cells} --figures {input.figures} --claims {input.claims} --scope {input.scope} "
        "--reference {input.reference} --out {output} > {log} 2>&1"


onsuccess:
    if Path(f"{RESULTS}/report.md").exists():
        logger.info(f"fedgmr-repro: report at {RESULTS}/report.md")
