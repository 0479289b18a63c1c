"""Asset checks: unique keys, referential integrity, ranges and null rates of the cleaned tables; champion
age."""

import time

from dagster import AssetCheckResult, AssetChecksDefinition, AssetCheckSeverity, asset_check

from coursepilot import ingest, quality
from coursepilot.registry import MODEL_NAME, champion_version
from coursepilot.schema import TABLES
from resources import TrackingResource, WarehouseResource


def _result(check: quality.CheckResult, severity=AssetCheckSeverity.ERROR) -> AssetCheckResult:
    return AssetCheckResult(
        passed=check.passed, severity=severity, description=check.description, metadata=check.metadata
    )


def _table_checks(table: str) -> list[AssetChecksDefinition]:
    @asset_check(
        asset=table, name="unique_key", blocking=True, description=f"{table}: key unique and not null"
    )
    def unique_key(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.get_connection() as con:
            return _result(quality.unique_key(con, table))

    @asset_check(
        asset=table, name="value_ranges", blocking=True, description=f"{table}: values within declared ranges"
    )
    def value_ranges(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.get_connection() as con:
            return _result(quality.value_ranges(con, table, ingest.source_info(con)["rating_scale"]))

    @asset_check(
        asset=table,
        name="null_rates",
        blocking=True,
        description=f"{table}: required columns complete; sparse ones reported",
    )
    def null_rates(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.get_connection() as con:
            return _result(quality.null_rates(con, table))

    return [unique_key, value_ranges, null_rates]


@asset_check(
    asset="interactions",
    name="referential_integrity",
    blocking=True,
    description="every interaction names a known learner and course",
)
def interactions_referential_integrity(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.get_connection() as con:
        return _result(quality.referential_integrity(con))


def champion_freshness(max_age_hours: float) -> AssetChecksDefinition:
    """Warns when the @champion is older than ``max_age_hours`` (``Settings.max_model_age_hours``)."""

    @asset_check(
        asset="recommender",
        name="champion_freshness",
        blocking=False,
        description=f"the @champion model is younger than {max_age_hours:g} h",
    )
    def check(tracking: TrackingResource) -> AssetCheckResult:
        client = tracking.tracker().mlflow.MlflowClient()
        version = champion_version(client)
        if version is None:
            return AssetCheckResult(
                passed=False, severity=AssetCheckSeverity.WARN, description="no @champion yet"
            )
        age = (time.time() - client.get_model_version(MODEL_NAME, version).creation_timestamp / 1000) / 3600
        return AssetCheckResult(
            passed=age <= max_age_hours,
            severity=AssetCheckSeverity.WARN,
            description=f"champion version {version} is {age:.1f} h old (limit {max_age_hours:g} h)",
            metadata={
                "champion_version": int(version),
                "age_hours": round(age, 2),
                "max_age_hours": max_age_hours,
            },
        )

    return check


DATA_CHECKS = [check for table in TABLES for check in _table_checks(table)] + [
    interactions_referential_integrity
]
