# fedgmr-repro: the paper's tables and figures as one DAG (design.md §1-3).
#   snakemake --cores N                              full reproduction (profiles/default)
#   snakemake --workflow-profile profiles/demo       offline demo, results/demo/
#   snakemake --workflow-profile profiles/slurm      cluster (training runs as job arrays)
#   snakemake --cores N --resources gpu=G            G local GPUs, one per run (--config runs_per_gpu=K)
#   python -m fedgmr status results                  done / running / failed / not started
#   snakemake table_main | fig_ablation | report_md  one paper output
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_paper_outputs(),
        f"{RESULTS}/report.md",
    default_target: True
