"""Protobuf request bodies: decode what kubectl and kubelet send for the built-in kinds.

client-go's typed clients (``kubectl create configmap|secret|namespace|serviceaccount|
service``, ``kubectl run``, a kubelet's node, lease and event writes and its
TokenRequests) send
``application/vnd.kubernetes.protobuf`` bodies and do not fall back to JSON.  This decoder
turns them into the JSON objects kube-apiserver would see, from a table of the field numbers
of k8s.io/api's generated.proto (checked against the Kubernetes project's fixture pairs).
Strict: a field the table does not know is a 415 (send JSON instead), never silently dropped.
The table covers the kinds the sandbox serves as clients create them, not every field.
"""

from __future__ import annotations

import base64
import calendar
import json
import time
from typing import Any

from yurthub.errors import BadRequest, UnsupportedMediaType

PROTOBUF = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

# A field: (json name, kind[, sub-schema]).  Kinds: s string, b bytes (base64), i int,
# bool, t Time, mt MicroTime, q Quantity, ios IntOrString, m message, inline (a message whose
# fields JSON puts in the parent), map:<s|b|q> (string keys).  A trailing "*" marks a
# repeated field; a leading "?" a pointer, whose zero value is kept.
Schema = dict[int, tuple[Any, ...]]

TIME: Schema = {}
REF: Schema = {1: ("kind", "s"), 2: ("namespace", "s"), 3: ("name", "s"), 4: ("uid", "s"),
               5: ("apiVersion", "s"), 6: ("resourceVersion", "s"), 7: ("fieldPath", "s")}
LOCAL_REF: Schema = {1: ("name", "s")}
OWNER_REF: Schema = {1: ("kind", "s"), 3: ("name", "s"), 4: ("uid", "s"),
                     5: ("apiVersion", "s"), 6: ("controller", "?bool"),
                     7: ("blockOwnerDeletion", "?bool")}
MANAGED: Schema = {1: ("manager", "s"), 2: ("operation", "s"), 3: ("apiVersion", "s"),
                   4: ("time", "t"), 6: ("fieldsType", "s"), 7: ("fieldsV1", "raw"),
                   8: ("subresource", "s")}
META: Schema = {
    1: ("name", "s"), 2: ("generateName", "s"), 3: ("namespace", "s"), 4: ("selfLink", "s"),
    5: ("uid", "s"), 6: ("resourceVersion", "s"), 7: ("generation", "i"),
    8: ("creationTimestamp", "t"), 9: ("deletionTimestamp", "t"),
    10: ("deletionGracePeriodSeconds", "?i"), 11: ("labels", "map:s"),
    12: ("annotations", "map:s"), 13: ("ownerReferences", "m*", OWNER_REF),
    14: ("finalizers", "s*"), 17: ("managedFields", "m*", MANAGED),
}
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
LEASE: Schema = {
    1: ("metadata", "m", META),
    2: ("spec", "m", {1: ("holderIdentity", "?s"), 2: ("leaseDurationSeconds", "?i"),
                      3: ("acquireTime", "mt"), 4: ("renewTime", "mt"),
                      5: ("leaseTransitions", "?i"), 6: ("strategy", "?s"),
                      7: ("preferredHolder", "?s")}),
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


class _Unknown(Exception):
    """A field the table does not know."""


def _varint(b: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(b):
            raise BadRequest("the protobuf body is truncated")
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return result, i


def _fields(b: bytes) -> list[tuple[int, int, Any]]:
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        elif wire == 1:
            value, i = b[i:i + 8], i + 8
        elif wire == 5:
            value, i = b[i:i + 4], i + 4
        else:
            raise BadRequest(f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _time(b: bytes, micro: bool) -> str:
    parts = {n: v for n, _, v in _fields(b)}
    seconds, nanos = _signed(parts.get(1, 0)), parts.get(2, 0)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{nanos // 1000:06d}Z" if micro else text + "Z"


def _scalar(kind: str, value: Any, sub: Schema | None, strict: bool) -> Any:
    if kind == "s":
        return bytes(value).decode()
    if kind == "b":
        return base64.b64encode(bytes(value)).decode()
    if kind == "i":
        return _signed(value)
    if kind == "bool":
        return bool(value)
    if kind in ("t", "mt"):
        return _time(value, kind == "mt")
    if kind == "q":
        return _decode(value, {1: ("string", "s")}, strict).get("string", "")
    if kind == "raw":  # a RawExtension-like {Raw: JSON bytes}
        return json.loads({n: v for n, _, v in _fields(value)}.get(1, b"{}"))
    if kind == "ios":
        parts = {n: v for n, _, v in _fields(value)}
        return bytes(parts.get(3, b"")).decode() if parts.get(1) == 1 else \
            _signed(parts.get(2, 0))
    if kind == "m":
        return _decode(value, sub or {}, strict)
    raise _Unknown(kind)


def _decode(b: bytes, schema: Schema, strict: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keep: set[str] = set()
    for number, _wire, value in _fields(b):
        spec = schema.get(number)
        if spec is None:
            if strict:
                raise _Unknown(number)
            continue
        name, kind = spec[0], spec[1]
        sub = spec[2] if len(spec) > 2 else None
        pointer = kind.startswith("?")
        kind = kind.lstrip("?")
        if kind == "inline":
            out.update(_decode(value, sub or {}, strict))
            continue
        if kind.startswith("map:"):
            entry = {n: v for n, _, v in _fields(value)}
            key = bytes(entry.get(1, b"")).decode()
            out.setdefault(name, {})[key] = _scalar(kind[4:], entry.get(2, b""), None, strict)
            keep.add(name)
            continue
        if kind.endswith("*"):
            out.setdefault(name, []).append(_scalar(kind[:-1], value, sub, strict))
            continue
        out[name] = _scalar(kind, value, sub, strict)
        if pointer:
            keep.add(name)
    # Go's JSON omits the empty values of non-pointer fields (omitempty)
    return {k: v for k, v in out.items() if k in keep or v not in ("", 0, False, [], {})
            or isinstance(v, dict)}


def decode_object(body: bytes, *, strict: bool = True) -> dict[str, Any]:
    """The JSON form of a ``k8s\\0``-enveloped protobuf object of a known kind.

    ``strict=False`` skips the fields the table does not know (for checking the table).
    """
    if not body.startswith(_MAGIC):
        raise BadRequest("the protobuf body lacks the k8s envelope")
    envelope = {n: v for n, _, v in _fields(body[len(_MAGIC):])}
    type_meta = {n: bytes(v).decode() for n, _, v in _fields(envelope.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    schema = SCHEMAS.get((api_version, kind))
    refuse = UnsupportedMediaType(
        f"the sandbox does not decode protobuf {api_version} {kind} bodies; send "
        "application/json")
    if schema is None:
        raise refuse
    try:
        obj = _decode(envelope.get(2, b""), schema, strict)
    except _Unknown:
        raise refuse from None
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRequest(f"the protobuf body does not decode: {e}") from None
    return {"kind": kind, "apiVersion": api_version, **obj}


# -- answers: the same tables, the other way ----------------------------------------------

LIST_META: Schema = {1: ("selfLink", "s"), 2: ("resourceVersion", "s"), 3: ("continue", "s"),
                     4: ("remainingItemCount", "?i")}


class NotEncodable(Exception):
    """The object has a field (or is of a kind) the table does not know: answer JSON."""


def _key(number: int, wire: int) -> bytes:
    return _uvarint(number << 3 | wire)


def _uvarint(v: int) -> bytes:
    v &= (1 << 64) - 1  # negative ints are ten-byte two's complement, as Go writes them
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _bytes_field(number: int, data: bytes) -> bytes:
    return _key(number, 2) + _uvarint(len(data)) + data


def _parse_time(text: str) -> tuple[int, int]:
    head, _, frac = text.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return seconds, nanos


def _encode_scalar(number: int, kind: str, value: Any, sub: Schema | None) -> bytes:
    if kind == "s":
        return _bytes_field(number, str(value).encode())
    if kind == "b":
        return _bytes_field(number, base64.b64decode(value))
    if kind in ("i", "bool"):
        return _key(number, 0) + _uvarint(int(value))
    if kind in ("t", "mt"):
        seconds, nanos = _parse_time(value)
        inner = _key(1, 0) + _uvarint(seconds) + _key(2, 0) + _uvarint(nanos)
        return _bytes_field(number, inner)
    if kind == "q":
        return _bytes_field(number, _bytes_field(1, str(value).encode()))
    if kind == "raw":
        return _bytes_field(number, _bytes_field(1, json.dumps(value).encode()))
    if kind == "ios":
        inner = (_key(1, 0) + _uvarint(1) + _bytes_field(3, value.encode())
                 if isinstance(value, str) else _key(1, 0) + _uvarint(0) + _key(2, 0)
                 + _uvarint(int(value)))
        return _bytes_field(number, inner)
    if kind == "m":
        if not isinstance(value, dict):
            raise NotEncodable(f"field {number} is not an object")
        return _bytes_field(number, _encode(value, sub or {}))
    raise NotEncodable(kind)


def _encode(obj: dict[str, Any], schema: Schema, used: set[str] | None = None) -> bytes:
    """``obj`` as the message ``schema`` describes, fields in number order (as Go writes
    them).  ``used`` collects the keys an inline message took from ``obj``; without it, a
    key no field takes makes the object NotEncodable."""
    out = bytearray()
    taken: set[str] = set()
    for number in sorted(schema):
        spec = schema[number]
        name, kind = spec[0], spec[1].lstrip("?")
        sub = spec[2] if len(spec) > 2 else None
        if kind == "inline":
            part: set[str] = set()
            out += _bytes_field(number, _encode(obj, sub or {}, part))
            taken |= part
            continue
        if name not in obj or obj[name] is None:
            continue
        taken.add(name)
        value = obj[name]
        if kind.startswith("map:"):
            for key in sorted(value):  # Go sorts map keys
                entry = _bytes_field(1, key.encode()) + _encode_scalar(2, kind[4:], value[key],
                                                                        None)
                out += _bytes_field(number, entry)
        elif kind.endswith("*"):
            for item in value:
                out += _encode_scalar(number, kind[:-1], item, sub)
        else:
            out += _encode_scalar(number, kind, value, sub)
    if used is not None:
        used |= taken
    elif set(obj) - taken:
        raise NotEncodable(f"fields {sorted(set(obj) - taken)}")
    return bytes(out)


def encode(obj: dict[str, Any]) -> bytes:
    """The ``k8s\\0``-enveloped protobuf of an object or a list of a kind in the table, as
    kube-apiserver answers ``Accept: application/vnd.kubernetes.protobuf``.

    Raises NotEncodable when the table lacks the kind or one of the object's fields (the
    caller answers JSON then).  Go also writes the zero values of non-pointer fields that
    JSON omits; this leaves them out, so real protobuf answers are a little longer.
    """
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    schema = SCHEMAS.get((api_version, kind))
    if schema is None and kind.endswith("List"):
        item = SCHEMAS.get((api_version, kind[:-4]))
        if item is not None:
            schema = {1: ("metadata", "m", LIST_META), 2: ("items", "m*", item)}
    if schema is None:
        raise NotEncodable(f"{api_version} {kind}")
    try:
        raw = _encode(body, schema)
    except (TypeError, ValueError, AttributeError) as e:
        raise NotEncodable(str(e)) from None
    type_meta = _bytes_field(1, api_version.encode()) + _bytes_field(2, kind.encode())
    return _MAGIC + (_bytes_field(1, type_meta) + _bytes_field(2, raw) + _bytes_field(3, b"")
                     + _bytes_field(4, b""))
