"""The protobuf field tables of the kinds the sandbox decodes (``kubesandbox.protobuf``):
field numbers of k8s.io/api's generated.proto, checked against the Kubernetes project's
fixture pairs (tests/unit/sandbox/test_sandbox_protobuf.py)."""

from __future__ import annotations

from yurthub.kube.protoobjects import LEASE, META, Schema

# The field kinds are kube/protoobjects.py's.

TIME: Schema = {}
REF: Schema = {1: ("kind", "s"), 2: ("namespace", "s"), 3: ("name", "s"), 4: ("uid", "s"),
               5: ("apiVersion", "s"), 6: ("resourceVersion", "s"), 7: ("fieldPath", "s")}
LOCAL_REF: Schema = {1: ("name", "s")}
CONDITION: Schema = {1: ("type", "s"), 2: ("status", "s"), 3: ("lastProbeTime", "t"),
                     4: ("lastTransitionTime", "t"), 5: ("reason", "s"), 6: ("message", "s")}
METAV1_CONDITION: Schema = {1: ("type", "s"), 2: ("status", "s"), 3: ("observedGeneration", "i"),
                            4: ("lastTransitionTime", "t"), 5: ("reason", "s"),
                            6: ("message", "s")}
NODE_CONDITION: Schema = {1: ("type", "s"), 2: ("status", "s"), 3: ("lastHeartbeatTime", "t"),
                          4: ("lastTransitionTime", "t"), 5: ("reason", "s"),
                          6: ("message", "s")}

CONFIG_MAP: Schema = {1: ("metadata", "m", META), 2: ("data", "map:s"),
                      3: ("binaryData", "map:b"), 4: ("immutable", "?bool")}
SECRET: Schema = {1: ("metadata", "m", META), 2: ("data", "map:b"), 3: ("type", "s"),
                  4: ("stringData", "map:s"), 5: ("immutable", "?bool")}
NAMESPACE: Schema = {1: ("metadata", "m", META), 2: ("spec", "m", {1: ("finalizers", "s*")}),
                     3: ("status", "m", {1: ("phase", "s"), 2: ("conditions", "m*",
                                                                 CONDITION)})}
SERVICE_ACCOUNT: Schema = {1: ("metadata", "m", META), 2: ("secrets", "m*", REF),
                           3: ("imagePullSecrets", "m*", LOCAL_REF),
                           4: ("automountServiceAccountToken", "?bool")}
SERVICE_PORT: Schema = {1: ("name", "s"), 2: ("protocol", "s"), 3: ("port", "i"),
                        4: ("targetPort", "ios"), 5: ("nodePort", "i"),
                        6: ("appProtocol", "?s")}
SERVICE: Schema = {
    1: ("metadata", "m", META),
    2: ("spec", "m", {
        1: ("ports", "m*", SERVICE_PORT), 2: ("selector", "map:s"), 3: ("clusterIP", "s"),
        4: ("type", "s"), 5: ("externalIPs", "s*"), 7: ("sessionAffinity", "s"),
        8: ("loadBalancerIP", "s"), 9: ("loadBalancerSourceRanges", "s*"),
        10: ("externalName", "s"), 11: ("externalTrafficPolicy", "s"),
        12: ("healthCheckNodePort", "i"), 13: ("publishNotReadyAddresses", "bool"),
        17: ("ipFamilyPolicy", "?s"), 18: ("clusterIPs", "s*"), 19: ("ipFamilies", "s*"),
        20: ("allocateLoadBalancerNodePorts", "?bool"), 21: ("loadBalancerClass", "?s"),
        22: ("internalTrafficPolicy", "?s"), 23: ("trafficDistribution", "?s")}),
    3: ("status", "m", {1: ("loadBalancer", "m", {}),
                        2: ("conditions", "m*", METAV1_CONDITION)}),
}
EVENT: Schema = {
    1: ("metadata", "m", META), 2: ("involvedObject", "m", REF), 3: ("reason", "s"),
    4: ("message", "s"), 5: ("source", "m", {1: ("component", "s"), 2: ("host", "s")}),
    6: ("firstTimestamp", "t"), 7: ("lastTimestamp", "t"), 8: ("count", "i"),
    9: ("type", "s"), 10: ("eventTime", "mt"),
    11: ("series", "m", {1: ("count", "i"), 2: ("lastObservedTime", "mt")}),
    12: ("action", "s"), 13: ("related", "m", REF), 14: ("reportingComponent", "s"),
    15: ("reportingInstance", "s"),
}
TAINT: Schema = {1: ("key", "s"), 2: ("value", "s"), 3: ("effect", "s"), 4: ("timeAdded", "t")}
NODE: Schema = {
    1: ("metadata", "m", META),
    2: ("spec", "m", {1: ("podCIDR", "s"), 3: ("providerID", "s"), 4: ("unschedulable", "bool"),
                      5: ("taints", "m*", TAINT), 7: ("podCIDRs", "s*")}),
    3: ("status", "m", {
        1: ("capacity", "map:q"), 2: ("allocatable", "map:q"), 3: ("phase", "s"),
        4: ("conditions", "m*", NODE_CONDITION),
        5: ("addresses", "m*", {1: ("type", "s"), 2: ("address", "s")}),
        6: ("daemonEndpoints", "m", {1: ("kubeletEndpoint", "m", {1: ("Port", "i")})}),
        7: ("nodeInfo", "m", {1: ("machineID", "s"), 2: ("systemUUID", "s"), 3: ("bootID", "s"),
                              4: ("kernelVersion", "s"), 5: ("osImage", "s"),
                              6: ("containerRuntimeVersion", "s"), 7: ("kubeletVersion", "s"),
                              8: ("kubeProxyVersion", "s"), 9: ("operatingSystem", "s"),
                              10: ("architecture", "s"),
                              11: ("swap", "m", {1: ("capacity", "?i")})}),
        8: ("images", "m*", {1: ("names", "s*"), 2: ("sizeBytes", "i")}),
        9: ("volumesInUse", "s*"),
        10: ("volumesAttached", "m*", {1: ("name", "s"), 2: ("devicePath", "s")}),
        12: ("runtimeHandlers", "m*", {1: ("name", "s"), 2: ("features", "m", {
            1: ("recursiveReadOnlyMounts", "?bool"), 2: ("userNamespaces", "?bool")})}),
        13: ("features", "m", {1: ("supplementalGroupsPolicy", "?bool")}),
    }),
}
FIELD_REF: Schema = {1: ("apiVersion", "s"), 2: ("fieldPath", "s")}
KEY_REF: Schema = {1: ("", "inline", LOCAL_REF), 2: ("key", "s"), 3: ("optional", "?bool")}
KEY_TO_PATH: Schema = {1: ("key", "s"), 2: ("path", "s"), 3: ("mode", "?i")}
PROBE: Schema = {
    1: ("", "inline", {
        1: ("exec", "m", {1: ("command", "s*")}),
        2: ("httpGet", "m", {1: ("path", "s"), 2: ("port", "ios"), 3: ("host", "s"),
                             4: ("scheme", "s"),
                             5: ("httpHeaders", "m*", {1: ("name", "s"), 2: ("value", "s")})}),
        3: ("tcpSocket", "m", {1: ("port", "ios"), 2: ("host", "s")}),
        4: ("grpc", "m", {1: ("port", "i"), 2: ("service", "?s")})}),
    2: ("initialDelaySeconds", "i"), 3: ("timeoutSeconds", "i"), 4: ("periodSeconds", "i"),
    5: ("successThreshold", "i"), 6: ("failureThreshold", "i"),
    7: ("terminationGracePeriodSeconds", "?i"),
}
CONTAINER: Schema = {
    1: ("name", "s"), 2: ("image", "s"), 3: ("command", "s*"), 4: ("args", "s*"),
    5: ("workingDir", "s"),
    6: ("ports", "m*", {1: ("name", "s"), 2: ("hostPort", "i"), 3: ("containerPort", "i"),
                        4: ("protocol", "s"), 5: ("hostIP", "s")}),
    7: ("env", "m*", {1: ("name", "s"), 2: ("value", "s"), 3: ("valueFrom", "m", {
        1: ("fieldRef", "m", FIELD_REF),
        2: ("resourceFieldRef", "m", {1: ("containerName", "s"), 2: ("resource", "s"),
                                      3: ("divisor", "q")}),
        3: ("configMapKeyRef", "m", KEY_REF), 4: ("secretKeyRef", "m", KEY_REF)})}),
    8: ("resources", "m", {1: ("limits", "map:q"), 2: ("requests", "map:q")}),
    9: ("volumeMounts", "m*", {1: ("name", "s"), 2: ("readOnly", "bool"), 3: ("mountPath", "s"),
                               4: ("subPath", "s"), 5: ("mountPropagation", "?s"),
                               6: ("subPathExpr", "s"), 7: ("recursiveReadOnly", "?s")}),
    10: ("livenessProbe", "m", PROBE), 11: ("readinessProbe", "m", PROBE),
    13: ("terminationMessagePath", "s"), 14: ("imagePullPolicy", "s"),
    15: ("securityContext", "m", {2: ("privileged", "?bool"), 4: ("runAsUser", "?i"),
                                  5: ("runAsNonRoot", "?bool"),
                                  6: ("readOnlyRootFilesystem", "?bool"),
                                  7: ("allowPrivilegeEscalation", "?bool"),
                                  8: ("runAsGroup", "?i")}),
    16: ("stdin", "bool"), 17: ("stdinOnce", "bool"), 18: ("tty", "bool"),
    19: ("envFrom", "m*", {1: ("prefix", "s"), 2: ("configMapRef", "m", {
        1: ("", "inline", LOCAL_REF), 2: ("optional", "?bool")}), 3: ("secretRef", "m", {
            1: ("", "inline", LOCAL_REF), 2: ("optional", "?bool")})}),
    20: ("terminationMessagePolicy", "s"), 22: ("startupProbe", "m", PROBE),
    24: ("restartPolicy", "?s"),
}
VOLUME_SOURCE: Schema = {
    1: ("hostPath", "m", {1: ("path", "s"), 2: ("type", "?s")}),
    2: ("emptyDir", "m", {1: ("medium", "s"), 2: ("sizeLimit", "?q")}),
    6: ("secret", "m", {1: ("secretName", "s"), 2: ("items", "m*", KEY_TO_PATH),
                        3: ("defaultMode", "?i"), 4: ("optional", "?bool")}),
    10: ("persistentVolumeClaim", "m", {1: ("claimName", "s"), 2: ("readOnly", "bool")}),
    16: ("downwardAPI", "m", {1: ("items", "m*", {1: ("path", "s"),
                                                  2: ("fieldRef", "m", FIELD_REF),
                                                  4: ("mode", "?i")}),
                              2: ("defaultMode", "?i")}),
    19: ("configMap", "m", {1: ("", "inline", LOCAL_REF), 2: ("items", "m*", KEY_TO_PATH),
                            3: ("defaultMode", "?i"), 4: ("optional", "?bool")}),
    26: ("projected", "m", {1: ("sources", "m*", {
        1: ("secret", "m", {1: ("", "inline", LOCAL_REF), 2: ("items", "m*", KEY_TO_PATH),
                            4: ("optional", "?bool")}),
        2: ("downwardAPI", "m", {1: ("items", "m*", {1: ("path", "s"),
                                                     2: ("fieldRef", "m", FIELD_REF),
                                                     4: ("mode", "?i")})}),
        3: ("configMap", "m", {1: ("", "inline", LOCAL_REF), 2: ("items", "m*", KEY_TO_PATH),
                               4: ("optional", "?bool")}),
        4: ("serviceAccountToken", "m", {1: ("audience", "s"), 2: ("expirationSeconds", "?i"),
                                         3: ("path", "s")})}),
        2: ("defaultMode", "?i")}),
}
POD: Schema = {
    1: ("metadata", "m", META),
    2: ("spec", "m", {
        1: ("volumes", "m*", {1: ("name", "s"), 2: ("", "inline", VOLUME_SOURCE)}),
        2: ("containers", "m*", CONTAINER), 3: ("restartPolicy", "s"),
        4: ("terminationGracePeriodSeconds", "?i"), 5: ("activeDeadlineSeconds", "?i"),
        6: ("dnsPolicy", "s"), 7: ("nodeSelector", "map:s"), 8: ("serviceAccountName", "s"),
        9: ("serviceAccount", "s"), 10: ("nodeName", "s"), 11: ("hostNetwork", "bool"),
        12: ("hostPID", "bool"), 13: ("hostIPC", "bool"),
        14: ("securityContext", "m", {2: ("runAsUser", "?i"), 3: ("runAsNonRoot", "?bool"),
                                      4: ("supplementalGroups", "i*"), 5: ("fsGroup", "?i"),
                                      6: ("runAsGroup", "?i")}),
        15: ("imagePullSecrets", "m*", LOCAL_REF), 16: ("hostname", "s"),
        17: ("subdomain", "s"), 19: ("schedulerName", "s"),
        20: ("initContainers", "m*", CONTAINER), 21: ("automountServiceAccountToken", "?bool"),
        22: ("tolerations", "m*", {1: ("key", "s"), 2: ("operator", "s"), 3: ("value", "s"),
                                   4: ("effect", "s"), 5: ("tolerationSeconds", "?i")}),
        23: ("hostAliases", "m*", {1: ("ip", "s"), 2: ("hostnames", "s*")}),
        24: ("priorityClassName", "s"), 25: ("priority", "?i"),
        29: ("runtimeClassName", "?s"), 30: ("enableServiceLinks", "?bool"),
        31: ("preemptionPolicy", "?s")}),
    3: ("status", "m", {
        1: ("phase", "s"), 2: ("conditions", "m*", CONDITION), 3: ("message", "s"),
        4: ("reason", "s"), 5: ("hostIP", "s"), 6: ("podIP", "s"), 7: ("startTime", "t"),
        9: ("qosClass", "s"), 12: ("podIPs", "m*", {1: ("ip", "s")}),
        16: ("hostIPs", "m*", {1: ("ip", "s")})}),
}

CSR: Schema = {
    1: ("metadata", "m", META),
    2: ("spec", "m", {1: ("request", "b"), 7: ("signerName", "s"),
                      8: ("expirationSeconds", "?i"), 5: ("usages", "s*"),
                      2: ("username", "s"), 3: ("uid", "s"), 4: ("groups", "s*")}),
    3: ("status", "m", {1: ("conditions", "m*", {
        1: ("type", "s"), 6: ("status", "s"), 2: ("reason", "s"), 3: ("message", "s"),
        4: ("lastUpdateTime", "t"), 5: ("lastTransitionTime", "t")}),
        2: ("certificate", "b")}),
}

# authentication.k8s.io/v1 TokenRequest: kubelet's POST .../serviceaccounts/<sa>/token.
TOKEN_REQUEST: Schema = {
    1: ("metadata", "m", META),
    2: ("spec", "m", {1: ("audiences", "s*"), 4: ("expirationSeconds", "?i"),
                      3: ("boundObjectRef", "m", {1: ("kind", "s"), 2: ("apiVersion", "s"),
                                                  3: ("name", "s"), 4: ("uid", "s")})}),
    3: ("status", "m", {1: ("token", "s"), 2: ("expirationTimestamp", "t")}),
}

SCHEMAS: dict[tuple[str, str], Schema] = {
    ("v1", "ConfigMap"): CONFIG_MAP, ("v1", "Secret"): SECRET, ("v1", "Namespace"): NAMESPACE,
    ("v1", "ServiceAccount"): SERVICE_ACCOUNT, ("v1", "Service"): SERVICE,
    ("v1", "Event"): EVENT, ("v1", "Node"): NODE, ("v1", "Pod"): POD,
    ("coordination.k8s.io/v1", "Lease"): LEASE,
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): CSR,
    ("authentication.k8s.io/v1", "TokenRequest"): TOKEN_REQUEST,
}
