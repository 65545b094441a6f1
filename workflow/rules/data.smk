# Raw sources -> prepared datasets (data_prep). The engine partitions in-process from the run config.
# A dataset that needs a source and has none fails while the DAG is built (common.smk: check_sources),
# naming the config key `datasets.<name>.source`. The source reaches the shell quoted (data_source_flag).


rule prepare_data:
    input:
        # Nothing to read; evaluated while the DAG is built, so a missing source stops the workflow there.
        lambda wc: require_source(wc.dataset) or [],
    output:
        directory(f"{RESOURCES}/{{dataset}}"),
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}.log",
    conda:
        ENV
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data/{{dataset}}.tsv"
    params:
        source=data_source_flag,
    resources:
        runtime=240,
        mem_mb=16000,
    shell:
        '"$FEDGMR_PY" -m data_prep prepare {wildcards.dataset} --out {output:q} {params.source} > {log:q} 2>&1'
