# One engine simulation per unique run config. The run directory holds only declared outputs; checkpoints
# live in <results>/checkpoints/<run_id>, outside them, so a failed, killed or timed-out job (SLURM runtime
# limit, OOM killer) keeps its checkpoint and the retry resumes from it instead of starting over.
#
# Provenance: params hold only what determines the result (the path-free run config and a label); the
# interpreter, the results root, the data path and the device are formatted into the command as globals
# or come from input/resources, so another Python, another data folder or another machine plans nothing new
# (rerun triggers: profiles/default and profiles/slurm; README "Reruns").
#
# Failures: an engine error (exit 1 or 2) fails the job, or with `tolerate_failed_runs` (the demo) is
# recorded in run.json and its cells are listed as not run. A kill (OOM killer, SIGTERM at a time limit,
# Ctrl-C) is never recorded: the job fails and the next invocation resumes the run from its checkpoint
# (workflow/scripts/mark_failed.py).


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
        config_json=run_config_json,
        label=lambda wc: run_label(wc.run_id),
    priority: run_priority
    # The engine's threads are the run config's run.threads (part of the run id); the same config value
    # is the job's `threads`, hence SLURM's --cpus-per-task. Change it with config engine.threads.
    threads: config["engine"]["threads"]
    resources:
        gpu=train_gpu_resource,
        gpu_slot=lambda wc: 1 if GPU_SLOTS else 0,
        runtime=lambda wc, attempt: run_compute(wc.run_id, "runtime") * attempt,
        mem_mb=lambda wc, attempt: run_compute(wc.run_id, "mem_mb"),
    shell:
        'cfg="$FEDGMR_RESULTS/configs/{wildcards.run_id}.json" ck="$FEDGMR_RESULTS/checkpoints/{wildcards.run_id}" '
        "root={input:q}; out=$(dirname {output.metrics:q}); "
        'mkdir -p "$(dirname "$cfg")" "$ck" && '
        "printf '%s\\n' {params.config_json:q} > \"$cfg\" && "
        '(echo "run {wildcards.run_id}: "{params.label:q} && '
        '"$FEDGMR_PY" workflow/scripts/engine_job.py --slots "$FEDGMR_GPU_SLOTS" --lock-dir "$FEDGMR_GPU_LOCKS" '
        '--cluster-gpus {resources.gpu} --cpu-device "$FEDGMR_CPU_DEVICE" -- '
        '"$FEDGMR_PY" -m fedgmr run "$cfg" ${{root:+--set "dataset.root=$root"}} --out "$out" '
        '--checkpoint-dir "$ck" --no-progress) > {log:q} 2>&1 || '
        '"$FEDGMR_PY" workflow/scripts/mark_failed.py --exit-status $? $FEDGMR_ON_ERROR --out "$out" '
        '--log {log:q} --config "$cfg"'


onstart:
    # The plan of this invocation, for `python -m fedgmr status <results>` ("not started" runs).
    write_plan(f"{RESULTS}/plan.csv")
