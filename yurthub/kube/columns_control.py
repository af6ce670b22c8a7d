"""The column definitions of kube-apiserver's Tables for autoscalers, pod templates and the
admission configuration (webhook configurations, validating admission policies).

Data, like ``yurthub.kube.columns``: names, types and priorities as kube-apiserver's printers
register them (``pkg/printers/internalversion/printers.go``, ``AddHandlers``, v1.32);
descriptions the ``SwaggerDoc()`` strings they quote (the autoscaler's columns quote
autoscaling/v2beta1's) or the literal strings they carry, typos included.  Apache-2.0,
(c) The Kubernetes Authors.
"""

from __future__ import annotations

from yurthub.kube.columns import AGE, NAME, Column

DESCRIPTIONS: dict[str, str] = {
    "HorizontalPodAutoscalerSpec.scaleTargetRef": (
        "scaleTargetRef points to the target resource to scale, and is used to the pods for "
        "which metrics should be collected, as well as to actually change the replica count."
    ),
    "HorizontalPodAutoscalerSpec.metrics": (
        "metrics contains the specifications for which to use to calculate the desired replica "
        "count (the maximum replica count across all metrics will be used).  The desired "
        "replica count is calculated multiplying the ratio between the target value and the "
        "current value by the current number of pods.  Ergo, metrics used must decrease as the "
        "pod count is increased, and vice-versa.  See the individual metric source types for "
        "more information about how each type of metric must respond."
    ),
    "HorizontalPodAutoscalerSpec.minReplicas": (
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can "
        "scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha "
        "feature gate HPAScaleToZero is enabled and at least one Object or External metric is "
        "configured.  Scaling is active as long as at least one metric value is available."
    ),
    "HorizontalPodAutoscalerSpec.maxReplicas": (
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can "
        "scale up. It cannot be less that minReplicas."
    ),
    "HorizontalPodAutoscalerStatus.currentReplicas": (
        "currentReplicas is current number of replicas of pods managed by this autoscaler, as "
        "last seen by the autoscaler."
    ),
}

D = DESCRIPTIONS

HORIZONTAL_POD_AUTOSCALER = (
    NAME,
    Column("Reference", description=D["HorizontalPodAutoscalerSpec.scaleTargetRef"]),
    Column("Targets", description=D["HorizontalPodAutoscalerSpec.metrics"]),
    Column("MinPods", description=D["HorizontalPodAutoscalerSpec.minReplicas"]),
    Column("MaxPods", description=D["HorizontalPodAutoscalerSpec.maxReplicas"]),
    Column("Replicas", description=D["HorizontalPodAutoscalerStatus.currentReplicas"]),
    AGE,
)
POD_TEMPLATE = (
    NAME,
    Column("Containers", description="Names of each container in the template."),
    Column("Images", description="Images referenced by each container in the template."),
    Column("Pod Labels", description="The labels for the pod template."),
)
WEBHOOK_CONFIGURATION = (
    NAME,
    Column("Webhooks", "integer",
           "Webhooks indicates the number of webhooks registered in this configuration"),
    AGE,
)
VALIDATING_ADMISSION_POLICY = (
    NAME,
    Column("Validations", "integer", "Validations indicates the number of validation rules "
           "defined in this configuration"),
    Column("ParamKind", description="ParamKind specifies the kind of resources used to "
           "parameterize this policy"),
    AGE,
)
