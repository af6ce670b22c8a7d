"""The column definitions of kube-apiserver's Tables for storage: persistent volumes, their
claims, storage classes.

Data, like ``yurthub.kube.columns``: names, types and priorities as ``AddHandlers`` registers
them (``pkg/printers/internalversion/printers.go``), descriptions the ``SwaggerDoc()`` strings
they quote (k8s.io/api v0.32.4, core/v1 and storage/v1).  Apache-2.0, (c) The Kubernetes
Authors.
"""

from __future__ import annotations

from yurthub.kube.columns import AGE, NAME, Column

DESCRIPTIONS: dict[str, str] = {
    "PersistentVolumeSpec.capacity": (
        "capacity is the description of the persistent volume's resources and capacity. More "
        "info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity"
    ),
    "PersistentVolumeSpec.accessModes": (
        "accessModes contains all ways the volume can be mounted. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes"
    ),
    "PersistentVolumeSpec.persistentVolumeReclaimPolicy": (
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when "
        "released from its claim. Valid options are Retain (default for manually created "
        "PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), "
        "and Recycle (deprecated). Recycle must be supported by the volume plugin underlying "
        "this PersistentVolume. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming"
    ),
    "PersistentVolumeStatus.phase": (
        "phase indicates if a volume is available, bound to a claim, or released by a claim. "
        "More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase"
    ),
    "PersistentVolumeSpec.claimRef": (
        "claimRef is part of a bi-directional binding between PersistentVolume and "
        "PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the "
        "authoritative bind between PV and PVC. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding"
    ),
    "PersistentVolumeStatus.reason": (
        "reason is a brief CamelCase string that describes any failure and is meant for machine"
        " parsing and tidy display in the CLI."
    ),
    "PersistentVolumeSpec.volumeMode": (
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or "
        "to remain in raw block state. Value of Filesystem is implied when not included in "
        "spec."
    ),
    "PersistentVolumeClaimStatus.phase": (
        "phase represents the current phase of PersistentVolumeClaim."
    ),
    "PersistentVolumeClaimSpec.volumeName": (
        "volumeName is the binding reference to the PersistentVolume backing this claim."
    ),
    "PersistentVolumeClaimStatus.capacity": (
        "capacity represents the actual resources of the underlying volume."
    ),
    "PersistentVolumeClaimStatus.accessModes": (
        "accessModes contains the actual access modes the volume backing the PVC has. More "
        "info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"
    ),
    "PersistentVolumeClaimSpec.volumeMode": (
        "volumeMode defines what type of volume is required by the claim. Value of Filesystem "
        "is implied when not included in claim spec."
    ),
    "StorageClass.provisioner": (
        "provisioner indicates the type of the provisioner."
    ),
    "StorageClass.reclaimPolicy": (
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes"
        " of this storage class. Defaults to Delete."
    ),
    "StorageClass.volumeBindingMode": (
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and "
        "bound.  When unset, VolumeBindingImmediate is used. This field is only honored by "
        "servers that enable the VolumeScheduling feature."
    ),
    "StorageClass.allowVolumeExpansion": (
        "allowVolumeExpansion shows whether the storage class allow volume expand."
    ),
}

D = DESCRIPTIONS

PERSISTENT_VOLUME = (
    NAME,
    Column("Capacity", description=D["PersistentVolumeSpec.capacity"]),
    Column("Access Modes", description=D["PersistentVolumeSpec.accessModes"]),
    Column("Reclaim Policy", description=D["PersistentVolumeSpec.persistentVolumeReclaimPolicy"]),
    Column("Status", description=D["PersistentVolumeStatus.phase"]),
    Column("Claim", description=D["PersistentVolumeSpec.claimRef"]),
    Column("StorageClass", description="StorageClass of the pv"),
    Column("VolumeAttributesClass", description="VolumeAttributesClass of the pv"),
    Column("Reason", description=D["PersistentVolumeStatus.reason"]),
    AGE,
    Column("VolumeMode", description=D["PersistentVolumeSpec.volumeMode"], priority=1),
)
PERSISTENT_VOLUME_CLAIM = (
    NAME,
    Column("Status", description=D["PersistentVolumeClaimStatus.phase"]),
    Column("Volume", description=D["PersistentVolumeClaimSpec.volumeName"]),
    Column("Capacity", description=D["PersistentVolumeClaimStatus.capacity"]),
    Column("Access Modes", description=D["PersistentVolumeClaimStatus.accessModes"]),
    Column("StorageClass", description="StorageClass of the pvc"),
    Column("VolumeAttributesClass", description="VolumeAttributesClass of the pvc"),
    AGE,
    Column("VolumeMode", description=D["PersistentVolumeClaimSpec.volumeMode"], priority=1),
)
STORAGE_CLASS = (
    NAME,
    Column("Provisioner", description=D["StorageClass.provisioner"]),
    Column("ReclaimPolicy", description=D["StorageClass.reclaimPolicy"]),
    Column("VolumeBindingMode", description=D["StorageClass.volumeBindingMode"]),
    Column("AllowVolumeExpansion", description=D["StorageClass.allowVolumeExpansion"]),
    AGE,
)
