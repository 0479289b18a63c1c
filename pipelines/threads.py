"""A step executor that runs independent steps side by side on threads of the run's own process.

The warehouse allows one writing *process*; inside it, DuckDB gives every connection its own transaction,
and steps write different tables. So steps that do not depend on each other (the peer branch beside ALS and
the fusion, the course embeddings beside the split) run at once in the run worker, on up to
``max_concurrent`` threads, and the second core works where one step alone leaves it idle. Each step's
Dagster events are logged from its thread as they happen; the run's own loop hands them to the plan
(which steps are ready, which outputs exist) and runs each step's hooks once it ends.

Dagster has no thread executor of its own: this one drives Dagster's execution plan with the calls its
in-process and multiprocess executors make (``dagster._core``, pinned with Dagster in pyproject.toml).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack

from dagster import DagsterInstance, ExecuteInProcessResult, Field, Int, JobDefinition, executor
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import PlanExecutionContext, PlanOrchestrationContext
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.execute_in_process import core_execute_in_process, merge_run_tags
from dagster._core.execution.plan.execute_plan import _trigger_hook, dagster_event_sequence_for_step
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.plan.step import ExecutionStep
from dagster._core.execution.retries import RetryMode, get_retries_config
from dagster._core.execution.tags import get_tag_concurrency_limits_config
from dagster._core.executor.base import Executor
from dagster._core.storage.tags import PRIORITY_TAG

from coursepilot.imports import IMPORTING

THREADS = 2
"""Steps at a time by default: this machine's cores. Each step already uses both where its work releases the
GIL (docs/scale.md), so more steps than cores would only add memory."""

EXCLUSIVE_TAG = "coursepilot/exclusive"
"""An op tag whose value names something its steps cannot share: of the steps with one value, one runs at a
time (the encoder's two steps, which would otherwise hold a thread waiting on ``embeddings.ENCODING``)."""
ONE_PER_VALUE = [{"key": EXCLUSIVE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]

POLL_S = 0.5
"""How often the run's thread looks for a captured interrupt while steps run."""
_DONE = object()


class ThreadExecutor(Executor):
    """Runs ready steps on up to ``max_concurrent`` threads of this process."""

    def __init__(
        self,
        retries: RetryMode,
        max_concurrent: int = THREADS,
        tag_concurrency_limits: list[dict] | None = None,
    ):
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent}")
        self._retries = retries
        self.max_concurrent = max_concurrent
        self.tag_limits = ONE_PER_VALUE if tag_concurrency_limits is None else tag_concurrency_limits

    @property
    def retries(self) -> RetryMode:
        return self._retries

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        steps = execution_plan.step_keys_to_execute
        # SQLAlchemy's ORM is loaded lazily by MLflow's store and by SQLAlchemy itself (Dagster's event writes
        # from the steps' threads), out of reach of IMPORTING: it is imported before the threads start. Two
        # steps first importing it at once failed CI runs (course_labels beside rating_models, 2026-12-04).
        with IMPORTING:
            import sqlalchemy.orm  # noqa: F401

        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps on up to {self.max_concurrent} threads in process (pid: {os.getpid()})",
            event_specific_data=EngineEventData.in_process(os.getpid(), steps),
        )
        yield from ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=self._iterate,
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
            ),
        )

    def _iterate(
        self, job_context: PlanExecutionContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        with InstanceConcurrencyContext(job_context.instance, job_context.dagster_run) as concurrency:
            yield from run_steps(
                job_context, execution_plan, concurrency, self.max_concurrent, self.tag_limits
            )


def _step_worker(step_context, events: queue.Queue) -> None:
    """Run one step, passing its events (and an error Dagster's own step wrapper did not catch) to the run."""
    key = step_context.step.key
    try:
        for event in dagster_event_sequence_for_step(step_context):
            events.put((key, event))
    except BaseException as error:  # handed to the run's thread, which raises it
        events.put((key, error))
    finally:
        events.put((key, _DONE))


def critical_path_first(execution_plan: ExecutionPlan) -> Callable[[ExecutionStep], float]:
    """Sort key of ready steps: a higher ``dagster/priority`` tag first, then the step with the longest chain
    of steps waiting on it (the run ends with the last of that chain, so it starts as soon as it can)."""
    waiting: dict[str, list[str]] = {}
    for key, deps in execution_plan.get_executable_step_deps().items():
        for dep in deps:
            waiting.setdefault(dep, []).append(key)
    chain: dict[str, int] = {}
    for step in reversed(execution_plan.get_steps_to_execute_in_topo_order()):
        chain[step.key] = 1 + max((chain[k] for k in waiting.get(step.key, ())), default=0)

    def key(step: ExecutionStep) -> float:
        return -(int(step.tags.get(PRIORITY_TAG, 0)) * len(chain) + chain.get(step.key, 0))

    return key


def run_steps(
    job_context: PlanExecutionContext,
    execution_plan: ExecutionPlan,
    concurrency: InstanceConcurrencyContext,
    max_concurrent: int,
    tag_concurrency_limits: list[dict] | None = None,
) -> Iterator[DagsterEvent]:
    """The plan's steps, up to ``max_concurrent`` at a time (and within ``tag_concurrency_limits``, Dagster's
    format), each on its own thread, the longest chain first; their events in the order they happen. When
    the run stops early (an error, an interrupt), the steps under way finish first: a step's warehouse
    transaction commits whole or not at all, and no step is left running past its run."""
    events: queue.Queue = queue.Queue()
    running: dict[str, tuple[object, list[DagsterEvent], threading.Thread]] = {}
    with ExitStack() as stack:
        active = stack.enter_context(
            execution_plan.start(
                retry_mode=job_context.retry_mode,
                sort_key_fn=critical_path_first(execution_plan),
                tag_concurrency_limits=tag_concurrency_limits,
                instance_concurrency_context=concurrency,
                step_dependency_config=job_context.step_dependency_config,
            )
        )
        log_key = job_context.instance.compute_log_manager.build_log_key_for_run(
            job_context.run_id, create_compute_log_file_key()
        )
        log_context = stack.enter_context(job_context.instance.compute_log_manager.capture_logs(log_key))
        yield DagsterEvent.capture_logs(
            job_context, list(execution_plan.step_keys_to_execute), log_key, log_context
        )
        stopping = False
        try:
            while (not stopping and not active.is_complete) or running:
                if not stopping and active.check_for_interrupts():
                    # a signal Dagster captured: no new step; the ones under way finish (worker threads
                    # cannot be interrupted) and the run then fails as interrupted
                    stopping = True
                    active.mark_interrupted()
                    yield DagsterEvent.engine_event(
                        job_context,
                        "Interrupted: waiting for the steps under way to finish",
                        EngineEventData.interrupted(list(running)),
                    )
                for step in (
                    [] if stopping else active.get_steps_to_execute(limit=max_concurrent - len(running))
                ):
                    step_context = job_context.for_step(step, active.get_known_state())
                    thread = threading.Thread(
                        target=_step_worker, args=(step_context, events), name=f"step {step.key}", daemon=True
                    )
                    running[step.key] = (step_context, [], thread)
                    thread.start()
                yield from active.concurrency_event_iterator(job_context)
                if not running:
                    active.sleep_til_ready()
                    continue
                try:
                    key, item = events.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                step_context, step_events, thread = running[key]
                if isinstance(item, BaseException):
                    raise item
                if item is not _DONE:
                    step_events.append(item)
                    yield item
                    active.handle_event(item)
                    continue
                thread.join()
                del running[key]
                active.verify_complete(job_context, key)
                for event in active.plan_events_iterator(job_context):
                    step_events.append(event)
                    yield event
                yield from _trigger_hook(step_context, step_events)
        finally:
            for _, _, thread in running.values():
                thread.join()
        if stopping:
            raise DagsterExecutionInterruptedError()


@executor(
    name="threads",
    config_schema={
        "max_concurrent": Field(Int, is_required=False, default_value=THREADS, description="steps at a time"),
        "tag_concurrency_limits": get_tag_concurrency_limits_config(),
        "retries": get_retries_config(),
    },
)
def thread_executor(init_context) -> ThreadExecutor:
    """Independent steps side by side on threads of the run worker's process (see ``pipelines.threads``)."""
    config = init_context.executor_config
    return ThreadExecutor(
        RetryMode.from_config(config["retries"]) or RetryMode.DISABLED,
        config["max_concurrent"],
        config.get("tag_concurrency_limits"),
    )


def execute_in_threads(
    job: JobDefinition,
    instance: DagsterInstance,
    run_config: Mapping[str, object],
    tags: Mapping[str, str] | None,
    max_concurrent: int = THREADS,
) -> ExecuteInProcessResult:
    """``job.execute_in_process(...)`` (the result, the events, the instance's run) with its steps on
    threads: Dagster's own ``execute_in_process`` always runs one step at a time."""
    ephemeral = job.as_ephemeral_job(resource_defs={}, input_values={}).with_executor_def(
        thread_executor.configured({"max_concurrent": max_concurrent}, name="threads")
    )
    return core_execute_in_process(
        run_config=run_config,
        job=InMemoryJob(job_def=ephemeral),
        instance=instance,
        output_capturing_enabled=True,
        raise_on_error=False,
        run_tags=merge_run_tags(
            job_def=job,
            partition_key=None,
            tags=tags,
            asset_selection=None,
            instance=instance,
            run_config=run_config,
        ),
    )
