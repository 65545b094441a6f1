# One engine simulation per unique run config. The run directory holds only declared outputs; checkpoints
# live in <results>/checkpoints/<run_id>, outside them, so a failed or timed-out job (SLURM runtime limit)
# keeps its checkpoint and the retry resumes from it instead of starting over. With `tolerate_failed_runs`
# (the demo), an engine error is recorded in run.json instead, and the report lists the run's cells as not run.


rule train:
    input:
        run_dataset,
    output:
        metrics=f"{RESULTS}/runs/{{run_id}}/metrics.csv",
        clients=f"{RESULTS}/runs/{{run_id}}/clients.csv",
        run=f"{RESULTS}/runs/{{run_id}}/run.json",
        config=f"{RESULTS}/runs/{{run_id}}/config.json",
    log:
        f"{RESULTS}/logs/train/{{run_id}}.log",
    conda:
        ENV
    benchmark:
        f"{RESULTS}/benchmarks/train/{{run_id}}.tsv"
    params:
        py=PY,
        config_json=run_config_json,
        config_file=lambda wc: f"{RESULTS}/configs/{wc.run_id}.json",
        out=lambda wc: run_dir(wc.run_id),
        checkpoints=lambda wc: f"{RESULTS}/checkpoints/{wc.run_id}",
        device=run_device,
        on_failure=run_on_failure,
    threads: config["engine"]["threads"]
    resources:
        gpu=config["engine"]["gpus"],
        runtime=lambda wc, attempt: run_compute(wc.run_id, "runtime") * attempt,
        mem_mb=lambda wc, attempt: run_compute(wc.run_id, "mem_mb"),
    shell:
        "mkdir -p $(dirname {params.config_file}) {params.checkpoints} && "
        "printf '%s\\n' {params.config_json:q} > {params.config_file} && "
        "({params.py} -m fedgmr run {params.config_file} --out {params.out} "
        "--checkpoint-dir {params.checkpoints} --device {params.device} --threads {threads} --no-progress "
        "> {log} 2>&1) || {params.on_failure}"
