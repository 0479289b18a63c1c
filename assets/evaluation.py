"""Evaluation stage: every model on the same splits over several seeds, cold start, peers, significance."""

import base64
import shutil
from pathlib import Path

import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from coursepilot.evaluation.report import ReportConfig, evaluate_all, flat_keys, write_report
from coursepilot.sampling import POPULATION_LEARNERS
from coursepilot.stored import CLUSTER_MAP, NEURAL_HYBRID, PEER_METRICS
from coursepilot.warehouse import row_count
from resources import EmbedderResource, ProjectHomeResource, TrackingResource, WarehouseResource

from . import COMPARISON
from .lineage import run_tags
from .metadata import markdown_table
from .peers import peer_recommendations
from .recommenders import neural_hybrid_model


class ReportSettings(Config):
    seeds: list[int] = [0, 1, 2]
    test_share: float = 0.2
    neural_seeds: int = 1
    max_learners: int = (
        POPULATION_LEARNERS  # each seed evaluates a seeded sample of at most this many learners (0: all)
    )


@asset(
    group_name="evaluation",
    tags=COMPARISON,
    kinds={"mlflow"},
    # what it reads: the neural hybrid's settings and the peers' metrics; every other model it fits itself on
    # its own splits, so it runs beside the served hybrid rather than after it
    deps=[peer_recommendations, neural_hybrid_model],
    description="report.json, report.md and plots: every model over several split seeds, cold start, peers "
    "and paired t-tests.",
)
def evaluation_report(
    context: AssetExecutionContext,
    config: ReportSettings,
    warehouse: WarehouseResource,
    home: ProjectHomeResource,
    tracking: TrackingResource,
    embedder: EmbedderResource,
) -> MaterializeResult:
    # the epochs the neural hybrid's early stopping chose (a home from before they were kept: early-stop per
    # seed)
    neural = home.models.last(NEURAL_HYBRID) or {"best_epochs": None}
    report_config = ReportConfig(
        seeds=tuple(config.seeds),
        test_share=config.test_share,
        neural_seeds=config.neural_seeds,
        max_learners=config.max_learners,
        neural_params={k: v for k, v in neural.items() if k != "best_epochs"},
        neural_epochs=neural["best_epochs"],
    )
    with warehouse.get_connection() as con:
        if not row_count(con, "interactions"):
            reason = "the source has no interactions (a catalogue): nothing to rank"
            context.log.warning(reason)
            return MaterializeResult(metadata={"skipped": reason})
        report = evaluate_all(con, report_config, log=context.log.info, embed=embedder.embed)
        tags = run_tags(context, con)
    peers = home.models.load(PEER_METRICS)
    report["peers"] = peers.peers
    report["significance"]["peers_vs"] = peers.significance
    out = home.home.reports / context.run.run_id
    files = write_report(report, out)
    cluster_map = home.models.path(CLUSTER_MAP, ".png")
    if cluster_map.exists():
        files.append(Path(shutil.copy2(cluster_map, out / "cluster_map.png")))
    latest = home.home.reports / "latest"
    shutil.rmtree(latest, ignore_errors=True)
    shutil.copytree(out, latest)
    tracker = tracking.tracker()
    with tracker.run("evaluation_report", tags):
        tracker.mlflow.log_metrics(
            {k.replace("@", "_at_"): v for k, v in flat_keys(report).items() if not k.endswith("_std")}
        )
        for file in files:
            tracker.mlflow.log_artifact(str(file))
    models = pd.DataFrame(report["models"]).T[
        ["precision@10", "recall@10", "ndcg@10", "map@10", "hit@10", "mrr", "coverage"]
    ]
    images = "\n\n".join(
        f"![{f.stem}](data:image/png;base64,{base64.b64encode(f.read_bytes()).decode()})"
        for f in files
        if f.suffix == ".png"
    )
    return MaterializeResult(
        metadata={
            "report_dir": MetadataValue.path(str(out)),
            "models": markdown_table(models.round(4).reset_index(names="model")),
            "seeds": MetadataValue.json(config.seeds),
            "plots": MetadataValue.md(images),
        }
    )
