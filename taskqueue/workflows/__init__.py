"""Dependencies and workflows: graphs as values (``graph``) and ``tq.workflows``
(``service``). Releasing a task's dependents is the finishing statements' job
(taskqueue.settle_children, migration 0010_workflows); the reconciler that
backs them up is ``taskqueue.worker.dependencies``."""

from taskqueue.errors import WorkflowNotFound
from taskqueue.workflows.graph import (
    MAX_WORKFLOW_TASKS,
    Step,
    Workflow,
    chain,
    check,
    group,
)
from taskqueue.workflows.service import (
    SubmittedTask,
    SubmittedWorkflow,
    WorkflowDetail,
    Workflows,
    summary_status,
    workflow_status,
)

__all__ = [
    "MAX_WORKFLOW_TASKS",
    "Step",
    "SubmittedTask",
    "SubmittedWorkflow",
    "Workflow",
    "WorkflowDetail",
    "WorkflowNotFound",
    "Workflows",
    "chain",
    "check",
    "group",
    "summary_status",
    "workflow_status",
]
