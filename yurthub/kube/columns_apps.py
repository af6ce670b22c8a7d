"""The column definitions of kube-apiserver's Tables for the workload resources (apps, batch).

Data, like ``yurthub.kube.columns``: names, types and priorities as kube-apiserver's printers
register them (``pkg/printers/internalversion/printers.go``, ``AddHandlers``), descriptions the
``SwaggerDoc()`` strings they quote (k8s.io/api v0.32.4; the printers quote the documentation of
extensions/v1beta1 and batch/v1beta1 even for the apps/v1 and batch/v1 types).  Apache-2.0,
(c) The Kubernetes Authors.
"""

from __future__ import annotations

from yurthub.kube.columns import AGE, NAME, Column

DESCRIPTIONS: dict[str, str] = {
    "DeploymentStatus.updatedReplicas": (
        "Total number of non-terminated pods targeted by this deployment that have the desired "
        "template spec."
    ),
    "DeploymentStatus.availableReplicas": (
        "Total number of available pods (ready for at least minReadySeconds) targeted by this "
        "deployment."
    ),
    "DeploymentSpec.selector": (
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be "
        "the ones affected by this deployment."
    ),
    "ReplicaSetSpec.replicas": (
        "Replicas is the number of desired replicas. This is a pointer to distinguish between "
        "explicit zero and unspecified. Defaults to 1. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-"
        "is-a-replicationcontroller"
    ),
    "ReplicaSetStatus.replicas": (
        "Replicas is the most recently observed number of replicas. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-"
        "is-a-replicationcontroller"
    ),
    "ReplicaSetStatus.readyReplicas": (
        "The number of ready replicas for this replica set."
    ),
    "ReplicaSetSpec.selector": (
        "Selector is a label query over pods that should match the replica count. If the "
        "selector is empty, it is defaulted to the labels present on the pod template. Label "
        "keys and values that must match in order to be controlled by this replica set. More "
        "info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-"
        "selectors"
    ),
    "DaemonSetStatus.desiredNumberScheduled": (
        "The total number of nodes that should be running the daemon pod (including nodes "
        "correctly running the daemon pod). More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"
    ),
    "DaemonSetStatus.currentNumberScheduled": (
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the"
        " daemon pod. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"
    ),
    "DaemonSetStatus.numberReady": (
        "The number of nodes that should be running the daemon pod and have one or more of the "
        "daemon pod running and ready."
    ),
    "DaemonSetStatus.updatedNumberScheduled": (
        "The total number of nodes that are running updated daemon pod"
    ),
    "DaemonSetStatus.numberAvailable": (
        "The number of nodes that should be running the daemon pod and have one or more of the "
        "daemon pod running and available (ready for at least spec.minReadySeconds)"
    ),
    "DaemonSetSpec.selector": (
        "A label query over pods that are managed by the daemon set. Must match in order to be "
        "controlled. If empty, defaulted to labels on Pod template. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-"
        "selectors"
    ),
    "PodSpec.nodeSelector": (
        "NodeSelector is a selector which must be true for the pod to fit on a node. Selector "
        "which must match a node's labels for the pod to be scheduled on that node. More info: "
        "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"
    ),
    "JobStatus.succeeded": (
        "The number of pods which reached phase Succeeded. The value increases monotonically "
        "for a given spec. However, it may decrease in reaction to scale down of elastic "
        "indexed jobs."
    ),
    "JobSpec.selector": (
        "A label query over pods that should match the pod count. Normally, the system sets "
        "this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-"
        "with-objects/labels/#label-selectors"
    ),
    "CronJobSpec.schedule": (
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."
    ),
    "CronJobSpec.timeZone": (
        "The time zone name for the given schedule, see "
        "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this "
        "will default to the time zone of the kube-controller-manager process. The set of valid"
        " time zone names and the time zone offset is loaded from the system-wide time zone "
        "database by the API server during CronJob validation and the controller manager during"
        " execution. If no system-wide time zone database can be found a bundled version of the"
        " database is used instead. If the time zone name becomes invalid during the lifetime "
        "of a CronJob or due to a change in host configuration, the controller will stop "
        "creating new new Jobs and will create a system event with the reason UnknownTimeZone. "
        "More information can be found in "
        "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"
    ),
    "CronJobSpec.suspend": (
        "This flag tells the controller to suspend subsequent executions, it does not apply to "
        "already started executions.  Defaults to false."
    ),
    "CronJobStatus.active": (
        "A list of pointers to currently running jobs."
    ),
    "CronJobStatus.lastScheduleTime": (
        "Information when was the last time the job was successfully scheduled."
    ),
}

D = DESCRIPTIONS
_CONTAINERS = Column("Containers", description="Names of each container in the template.",
                     priority=1)
_IMAGES = Column("Images", description="Images referenced by each container in the template.",
                 priority=1)

DEPLOYMENT = (
    NAME,
    Column("Ready", description="Number of the pod with ready state"),
    Column("Up-to-date", description=D["DeploymentStatus.updatedReplicas"]),
    Column("Available", description=D["DeploymentStatus.availableReplicas"]),
    AGE,
    _CONTAINERS,
    _IMAGES,
    Column("Selector", description=D["DeploymentSpec.selector"], priority=1),
)
REPLICA_SET = (
    NAME,
    Column("Desired", "integer", D["ReplicaSetSpec.replicas"]),
    Column("Current", "integer", D["ReplicaSetStatus.replicas"]),
    Column("Ready", "integer", D["ReplicaSetStatus.readyReplicas"]),
    AGE,
    _CONTAINERS,
    _IMAGES,
    Column("Selector", description=D["ReplicaSetSpec.selector"], priority=1),
)
DAEMON_SET = (
    NAME,
    Column("Desired", "integer", D["DaemonSetStatus.desiredNumberScheduled"]),
    Column("Current", "integer", D["DaemonSetStatus.currentNumberScheduled"]),
    Column("Ready", "integer", D["DaemonSetStatus.numberReady"]),
    Column("Up-to-date", "integer", D["DaemonSetStatus.updatedNumberScheduled"]),
    Column("Available", "integer", D["DaemonSetStatus.numberAvailable"]),
    Column("Node Selector", description=D["PodSpec.nodeSelector"]),
    AGE,
    _CONTAINERS,
    _IMAGES,
    Column("Selector", description=D["DaemonSetSpec.selector"], priority=1),
)
STATEFUL_SET = (
    NAME,
    Column("Ready", description="Number of the pod with ready state"),
    AGE,
    _CONTAINERS,
    _IMAGES,
)
JOB = (
    NAME,
    Column("Status", description="Status of the job."),
    Column("Completions", description=D["JobStatus.succeeded"]),
    Column("Duration", description="Time required to complete the job."),
    AGE,
    _CONTAINERS,
    _IMAGES,
    Column("Selector", description=D["JobSpec.selector"], priority=1),
)
CRON_JOB = (
    NAME,
    Column("Schedule", description=D["CronJobSpec.schedule"]),
    Column("Timezone", description=D["CronJobSpec.timeZone"]),
    Column("Suspend", "boolean", D["CronJobSpec.suspend"]),
    Column("Active", "integer", D["CronJobStatus.active"]),
    Column("Last Schedule", description=D["CronJobStatus.lastScheduleTime"]),
    AGE,
    _CONTAINERS,
    _IMAGES,
    Column("Selector", description=D["JobSpec.selector"], priority=1),
)
