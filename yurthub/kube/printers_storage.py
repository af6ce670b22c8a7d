"""kube-apiserver's printers for storage: persistent volumes, persistent volume claims,
storage classes, and the CSI objects (drivers, nodes, volume attachments).

The cells of ``printPersistentVolume``, ``printPersistentVolumeClaim`` and
``printStorageClass`` (``pkg/printers/internalversion/printers.go``, kubernetes/kubernetes
v1.32): capacities as ``Quantity.String()`` prints them, access modes as ``RWO,ROX,RWX,RWOP``,
the storage class from the beta annotation first.  Like kube-apiserver, the volume printers
always add the VOLUMEMODE cell, wide or not (its column is priority 1: kubectl shows it with
``-o wide``).
"""

from __future__ import annotations

from typing import Any

from yurthub.kube import columns_storage as C
from yurthub.kube.humantime import since
from yurthub.kube.quantity import canonical
from yurthub.kube.tablerow import Printer, Row, as_dict, as_list, as_str

BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
          ("ReadWriteOncePod", "RWOP"))


def access_modes(modes: Any) -> str:
    """``helper.GetAccessModesAsString``: the modes present, in a fixed order, once each."""
    present = {as_str(m) for m in as_list(modes)}
    return ",".join(short for mode, short in _MODES if mode in present)


def _storage(resources: Any) -> str:
    """The ``storage`` entry of a resource list, as ``Quantity.String()`` (absent: ``0``)."""
    return canonical(as_dict(resources).get("storage"))


def _class(meta: dict[str, Any], spec_class: Any) -> str:
    """``GetPersistentVolume(Claim)Class``: the beta annotation wins over the spec field."""
    annotations = as_dict(meta.get("annotations"))
    if BETA_STORAGE_CLASS in annotations:
        return as_str(annotations[BETA_STORAGE_CLASS])
    return as_str(spec_class)


def _unset(value: Any) -> str:
    return "<unset>" if value is None else as_str(value)


def print_persistent_volume(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = (as_dict(obj.get(k)) for k in ("metadata", "spec", "status"))
    ref = spec.get("claimRef")
    claim = "" if ref is None else \
        f"{as_str(as_dict(ref).get('namespace'))}/{as_str(as_dict(ref).get('name'))}"
    phase = "Terminating" if meta.get("deletionTimestamp") is not None \
        else as_str(status.get("phase"))
    return Row([as_str(meta.get("name")), _storage(spec.get("capacity")),
                access_modes(spec.get("accessModes")),
                as_str(spec.get("persistentVolumeReclaimPolicy")), phase, claim,
                _class(meta, spec.get("storageClassName")),
                _unset(spec.get("volumeAttributesClassName")), as_str(status.get("reason")),
                since(meta.get("creationTimestamp"), now), _unset(spec.get("volumeMode"))])


def print_persistent_volume_claim(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec, status = (as_dict(obj.get(k)) for k in ("metadata", "spec", "status"))
    phase = "Terminating" if meta.get("deletionTimestamp") is not None \
        else as_str(status.get("phase"))
    volume = as_str(spec.get("volumeName"))
    capacity = modes = ""
    if volume:  # only a bound claim shows what it got
        modes = access_modes(status.get("accessModes"))
        capacity = _storage(status.get("capacity"))
    return Row([as_str(meta.get("name")), phase, volume, capacity, modes,
                _class(meta, spec.get("storageClassName")),
                _unset(spec.get("volumeAttributesClassName")),
                since(meta.get("creationTimestamp"), now), _unset(spec.get("volumeMode"))])


def print_storage_class(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta = as_dict(obj.get("metadata"))
    annotations = as_dict(meta.get("annotations"))
    name = as_str(meta.get("name"))
    if annotations.get(DEFAULT_CLASS) == "true" or annotations.get(BETA_DEFAULT_CLASS) == "true":
        name += " (default)"
    reclaim, binding = obj.get("reclaimPolicy"), obj.get("volumeBindingMode")
    return Row([name, as_str(obj.get("provisioner")),
                "Delete" if reclaim is None else as_str(reclaim),
                "Immediate" if binding is None else as_str(binding),
                obj.get("allowVolumeExpansion") is True,
                since(meta.get("creationTimestamp"), now)])


def _bool(value: Any, default: bool) -> bool:
    """A ``*bool`` printed as its value, or the printer's default for nil."""
    return default if value is None else value is True


def print_csi_driver(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec = as_dict(obj.get("metadata")), as_dict(obj.get("spec"))
    tokens = spec.get("tokenRequests")
    audiences = "<unset>" if tokens is None else \
        ",".join(as_str(as_dict(t).get("audience")) for t in as_list(tokens))
    modes = ",".join(as_str(m) for m in as_list(spec.get("volumeLifecycleModes")))
    return Row([as_str(meta.get("name")), _bool(spec.get("attachRequired"), True),
                _bool(spec.get("podInfoOnMount"), False),
                _bool(spec.get("storageCapacity"), False), audiences,
                _bool(spec.get("requiresRepublish"), False), modes or "<none>",
                since(meta.get("creationTimestamp"), now)])


def print_csi_node(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta = as_dict(obj.get("metadata"))
    return Row([as_str(meta.get("name")), len(as_list(as_dict(obj.get("spec")).get("drivers"))),
                since(meta.get("creationTimestamp"), now)])


def print_volume_attachment(obj: dict[str, Any], wide: bool, now: float) -> Row:
    meta, spec = as_dict(obj.get("metadata")), as_dict(obj.get("spec"))
    return Row([as_str(meta.get("name")), as_str(spec.get("attacher")),
                as_str(as_dict(spec.get("source")).get("persistentVolumeName")),
                as_str(spec.get("nodeName")),
                as_dict(obj.get("status")).get("attached") is True,
                since(meta.get("creationTimestamp"), now)])


def print_csi_storage_capacity(obj: dict[str, Any], wide: bool, now: float) -> Row:
    """``printCSIStorageCapacity``: no Age column; ``<unset>`` without a capacity."""
    capacity = obj.get("capacity")
    return Row([as_str(as_dict(obj.get("metadata")).get("name")),
                as_str(obj.get("storageClassName")),
                "<unset>" if capacity is None else canonical(capacity)])


STORAGE_PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "persistentvolumes"): Printer(C.PERSISTENT_VOLUME, print_persistent_volume),
    ("", "persistentvolumeclaims"): Printer(C.PERSISTENT_VOLUME_CLAIM,
                                            print_persistent_volume_claim),
    ("storage.k8s.io", "storageclasses"): Printer(C.STORAGE_CLASS, print_storage_class),
    ("storage.k8s.io", "csidrivers"): Printer(C.CSI_DRIVER, print_csi_driver),
    ("storage.k8s.io", "csinodes"): Printer(C.CSI_NODE, print_csi_node),
    ("storage.k8s.io", "volumeattachments"): Printer(C.VOLUME_ATTACHMENT,
                                                     print_volume_attachment),
    ("storage.k8s.io", "csistoragecapacities"): Printer(C.CSI_STORAGE_CAPACITY,
                                                        print_csi_storage_capacity),
}
