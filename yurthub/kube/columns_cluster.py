"""The column definitions of kube-apiserver's Tables for the cluster's policy objects:
certificate signing requests, runtime and priority classes, network policies, ingresses and
ingress classes, role bindings, controller revisions, replication controllers, pod
disruption budgets.

Data, like ``yurthub.kube.columns``: names, types and priorities as ``AddHandlers`` registers
them (``pkg/printers/internalversion/printers.go``), descriptions the ``SwaggerDoc()`` strings
they quote (k8s.io/api v0.32.4; the Go code quotes certificates/v1beta1, rbac/v1beta1,
apps/v1beta1 and extensions/v1beta1 for some).  RuntimeClass's Handler quotes a key ObjectMeta
does not have: its description is empty, on the wire too.  Apache-2.0, (c) The Kubernetes
Authors.
"""

from __future__ import annotations

from yurthub.kube.columns import AGE, NAME, Column

DESCRIPTIONS: dict[str, str] = {
    "CertificateSigningRequestSpec.signerName": (
        "Requested signer for the request. It is a qualified name in the form: `scope-"
        "hostname.io/name`. If empty, it will be defaulted:\n 1. If it's a kubelet client "
        "certificate, it is assigned\n    \"kubernetes.io/kube-apiserver-client-kubelet\".\n 2. If "
        "it's a kubelet serving certificate, it is assigned\n    \"kubernetes.io/kubelet-"
        "serving\".\n 3. Otherwise, it is assigned \"kubernetes.io/legacy-unknown\".\nDistribution "
        "of trust for signers happens out of band. You can select on this field using "
        "`spec.signerName`."
    ),
    "CertificateSigningRequestSpec.request": (
        "Base64-encoded PKCS#10 CSR data"
    ),
    "CertificateSigningRequestSpec.expirationSeconds": (
        "expirationSeconds is the requested duration of validity of the issued certificate. The"
        " certificate signer may issue a certificate with a different validity duration so a "
        "client must check the delta between the notBefore and and notAfter fields in the "
        "issued certificate to determine the actual duration.\n\nThe v1.22+ in-tree "
        "implementations of the well-known Kubernetes signers will honor this field as long as "
        "the requested duration is not greater than the maximum duration they will honor per "
        "the --cluster-signing-duration CLI flag to the Kubernetes controller manager.\n\n"
        "Certificate signers may not honor this field for various reasons:\n\n  1. Old signer "
        "that is unaware of the field (such as the in-tree\n     implementations prior to v1.22)"
        "\n  2. Signer whose configured maximum is shorter than the requested duration\n  3. "
        "Signer whose configured minimum is longer than the requested duration\n\nThe minimum "
        "valid value for expirationSeconds is 600, i.e. 10 minutes."
    ),
    "CertificateSigningRequestStatus.conditions": (
        "Conditions applied to the request, such as approval or denial."
    ),
    "PriorityClass.value": (
        "value represents the integer value of this priority class. This is the actual priority"
        " that pods receive when they have the name of this class in their pod spec."
    ),
    "PriorityClass.globalDefault": (
        "globalDefault specifies whether this PriorityClass should be considered as the default"
        " priority for pods that do not have any priority class. Only one PriorityClass can be "
        "marked as `globalDefault`. However, if more than one PriorityClasses exists with their"
        " `globalDefault` field set to true, the smallest value of such global default "
        "PriorityClasses will be used as the default priority."
    ),
    "PriorityClass.preemptionPolicy": (
        "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, "
        "PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."
    ),
    "NetworkPolicySpec.podSelector": (
        "Selects the pods to which this NetworkPolicy object applies.  The array of ingress "
        "rules is applied to any pods selected by this field. Multiple network policies can "
        "select the same set of pods.  In this case, the ingress rules for each are combined "
        "additively. This field is NOT optional and follows standard label selector semantics. "
        "An empty podSelector matches all pods in this namespace."
    ),
    "RoleBinding.roleRef": (
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global "
        "namespace. If the RoleRef cannot be resolved, the Authorizer must return an error."
    ),
    "ClusterRoleBinding.roleRef": (
        "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef "
        "cannot be resolved, the Authorizer must return an error."
    ),
    "ControllerRevision.revision": (
        "revision indicates the revision of the state represented by Data."
    ),
    "ReplicationControllerSpec.replicas": (
        "Replicas is the number of desired replicas. This is a pointer to distinguish between "
        "explicit zero and unspecified. Defaults to 1. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-"
        "is-a-replicationcontroller"
    ),
    "ReplicationControllerSpec.selector": (
        "Selector is a label query over pods that should match the Replicas count. If Selector "
        "is empty, it is defaulted to the labels present on the Pod template. Label keys and "
        "values that must match in order to be controlled by this replication controller, if "
        "empty defaulted to labels on Pod template. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-"
        "selectors"
    ),
    "ReplicationControllerStatus.replicas": (
        "Replicas is the most recently observed number of replicas. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-"
        "is-a-replicationcontroller"
    ),
    "ReplicationControllerStatus.readyReplicas": (
        "The number of ready replicas for this replication controller."
    ),
}

D = DESCRIPTIONS
_CONTAINERS = Column("Containers", description="Names of each container in the template.",
                     priority=1)
_IMAGES = Column("Images", description="Images referenced by each container in the template.",
                 priority=1)

CERTIFICATE_SIGNING_REQUEST = (
    NAME,
    AGE,
    Column("SignerName", description=D["CertificateSigningRequestSpec.signerName"]),
    Column("Requestor", description=D["CertificateSigningRequestSpec.request"]),
    Column("RequestedDuration", description=D["CertificateSigningRequestSpec.expirationSeconds"]),
    Column("Condition", description=D["CertificateSigningRequestStatus.conditions"]),
)
RUNTIME_CLASS = (NAME, Column("Handler"), AGE)
PRIORITY_CLASS = (
    NAME,
    Column("Value", "integer", D["PriorityClass.value"]),
    Column("Global-Default", "boolean", D["PriorityClass.globalDefault"]),
    AGE,
    Column("PreemptionPolicy", description=D["PriorityClass.preemptionPolicy"]),
)
NETWORK_POLICY = (NAME, Column("Pod-Selector", description=D["NetworkPolicySpec.podSelector"]),
                  AGE)


def _binding(kind: str, role_ref: str) -> tuple[Column, ...]:
    return (NAME, Column("Role", description=D[role_ref]), AGE,
            Column("Users", description=f"Users in the {kind}", priority=1),
            Column("Groups", description=f"Groups in the {kind}", priority=1),
            Column("ServiceAccounts", description=f"ServiceAccounts in the {kind}", priority=1))


ROLE_BINDING = _binding("roleBinding", "RoleBinding.roleRef")
CLUSTER_ROLE_BINDING = _binding("clusterRoleBinding", "ClusterRoleBinding.roleRef")
CONTROLLER_REVISION = (
    NAME,
    Column("Controller", description="Controller of the object"),
    Column("Revision", description=D["ControllerRevision.revision"]),
    AGE,
)
REPLICATION_CONTROLLER = (
    NAME,
    Column("Desired", "integer", D["ReplicationControllerSpec.replicas"]),
    Column("Current", "integer", D["ReplicationControllerStatus.replicas"]),
    Column("Ready", "integer", D["ReplicationControllerStatus.readyReplicas"]),
    AGE,
    _CONTAINERS,
    _IMAGES,
    Column("Selector", description=D["ReplicationControllerSpec.selector"], priority=1),
)
POD_DISRUPTION_BUDGET = (
    NAME,
    Column("Min Available", description="The minimum number of pods that must be available."),
    Column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
    Column("Allowed Disruptions", "integer",
           "Calculated number of pods that may be disrupted at this time."),
    AGE,
)
INGRESS = (
    NAME,
    Column("Class", description="The name of the IngressClass resource that should be used for "
           "additional configuration"),
    Column("Hosts", description="Hosts that incoming requests are matched against before the "
           "ingress rule"),
    Column("Address", description="Address is a list containing ingress points for the "
           "load-balancer"),
    Column("Ports", description="Ports of TLS configurations that open"),
    AGE,
)
INGRESS_CLASS = (
    NAME,
    Column("Controller", description="Controller that is responsible for handling this class"),
    Column("Parameters", description="A reference to a resource with additional parameters"),
    AGE,
)
RESOURCE_QUOTA = (
    NAME,
    Column("Request", description="Request represents a minimum amount of cpu/memory that a "
           "container may consume."),
    Column("Limit", description="Limits control the maximum amount of cpu/memory that a "
           "container may use independent of contention on the node."),
    AGE,
)
