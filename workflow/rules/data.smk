# Raw sources -> prepared datasets (data_prep). The engine partitions in-process from the run config.


rule prepare_data:
    output:
        directory(f"{RESOURCES}/{{dataset}}"),
    log:
        f"{RESULTS}/logs/prepare_data/{{dataset}}.log",
    conda:
        ENV
    benchmark:
        f"{RESULTS}/benchmarks/prepare_data/{{dataset}}.tsv"
    params:
        py=PY,
        source=data_source_flag,
    resources:
        runtime=240,
        mem_mb=16000,
    shell:
        "{params.py} -m data_prep prepare {wildcards.dataset} --out {output} {params.source} > {log} 2>&1"
