"""The column definitions of kube-apiserver's Tables for storage: persistent volumes, their
claims, storage classes, and the CSI objects (drivers, nodes, volume attachments, storage
capacities).

Data, like ``yurthub.kube.columns``: names, types and priorities as ``AddHandlers`` registers
them (``pkg/printers/internalversion/printers.go``), descriptions the ``SwaggerDoc()`` strings
they quote (k8s.io/api v0.32.4, core/v1 and storage/v1).  Apache-2.0, (c) The Kubernetes
Authors.
"""

from __future__ import annotations

from yurthub.kube.columns import AGE, NAME, Column

DESCRIPTIONS: dict[str, str] = {
    "CSIStorageCapacity.storageClassName": (
        "storageClassName represents the name of the StorageClass that the reported capacity "
        "applies to. It must meet the same requirements as the name of a StorageClass object "
        "(non-empty, DNS subdomain). If that object no longer exists, the CSIStorageCapacity "
        "object is obsolete and should be removed by its creator. This field is immutable."
    ),
    "CSIStorageCapacity.capacity": (
        "capacity is the value reported by the CSI driver in its GetCapacityResponse for a "
        "GetCapacityRequest with topology and parameters that match the previous fields.  The "
        "semantic is currently (CSI spec 1.2) defined as: The available capacity, in bytes, of "
        "the storage that can be used to provision volumes. If not set, that information is "
        "currently unavailable."
    ),
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
    "CSIDriverSpec.attachRequired": (
        "attachRequired indicates this CSI volume driver requires an attach operation (because "
        "it implements the CSI ControllerPublishVolume() method), and that the Kubernetes "
        "attach detach controller should call the attach volume interface which checks the "
        "volumeattachment status and waits until the volume is attached before proceeding to "
        "mounting. The CSI external-attacher coordinates with CSI volume driver and updates the"
        " volumeattachment status when the attach operation is complete. If the "
        "CSIDriverRegistry feature gate is enabled and the value is specified to false, the "
        "attach operation will be skipped. Otherwise the attach operation will be called.\n\nThis"
        " field is immutable."
    ),
    "CSIDriverSpec.podInfoOnMount": (
        "podInfoOnMount indicates this CSI volume driver requires additional pod information "
        "(like podName, podUID, etc.) during mount operations, if set to true. If set to false,"
        " pod information will not be passed on mount. Default is false.\n\nThe CSI driver "
        "specifies podInfoOnMount as part of driver deployment. If true, Kubelet will pass pod "
        "information as VolumeContext in the CSI NodePublishVolume() calls. The CSI driver is "
        "responsible for parsing and validating the information passed in as VolumeContext.\n\n"
        "The following VolumeContext will be passed if podInfoOnMount is set to true. This list"
        " might grow, but the prefix will be used. \"csi.storage.k8s.io/pod.name\": pod.Name "
        "\"csi.storage.k8s.io/pod.namespace\": pod.Namespace \"csi.storage.k8s.io/pod.uid\": "
        "string(pod.UID) \"csi.storage.k8s.io/ephemeral\": \"true\" if the volume is an ephemeral "
        "inline volume\n                                defined by a CSIVolumeSource, otherwise "
        "\"false\"\n\n\"csi.storage.k8s.io/ephemeral\" is a new feature in Kubernetes 1.16. It is "
        "only required for drivers which support both the \"Persistent\" and \"Ephemeral\" "
        "VolumeLifecycleMode. Other drivers can leave pod info disabled and/or ignore this "
        "field. As Kubernetes 1.15 doesn't support this field, drivers can only support one "
        "mode when deployed on such a cluster and the deployment determines which mode that is,"
        " for example via a command line parameter of the driver.\n\nThis field was immutable in "
        "Kubernetes < 1.29 and now is mutable."
    ),
    "CSIDriverSpec.storageCapacity": (
        "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider "
        "the storage capacity that the driver deployment will report by creating "
        "CSIStorageCapacity objects with capacity information, if set to true.\n\nThe check can "
        "be enabled immediately when deploying a driver. In that case, provisioning new volumes"
        " with late binding will pause until the driver deployment has published some suitable "
        "CSIStorageCapacity object.\n\nAlternatively, the driver can be deployed with the field "
        "unset or false and it can be flipped later when storage capacity information has been "
        "published.\n\nThis field was immutable in Kubernetes <= 1.22 and now is mutable."
    ),
    "CSIDriverSpec.tokenRequests": (
        "tokenRequests indicates the CSI driver needs pods' service account tokens it is "
        "mounting volume for to do necessary authentication. Kubelet will pass the tokens in "
        "VolumeContext in the CSI NodePublishVolume calls. The CSI driver should parse and "
        "validate the following VolumeContext: \"csi.storage.k8s.io/serviceAccount.tokens\": {\n  "
        "\"<audience>\": {\n    \"token\": <token>,\n    \"expirationTimestamp\": "
        "<expiration timestamp"
        " in RFC3339>,\n  },\n  ...\n}\n\nNote: Audience in each TokenRequest should be different "
        "and at most one token is empty string. To receive a new token after expiry, "
        "RequiresRepublish can be used to trigger NodePublishVolume periodically."
    ),
    "CSIDriverSpec.requiresRepublish": (
        "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being "
        "periodically called to reflect any possible change in the mounted volume. This field "
        "defaults to false.\n\nNote: After a successful initial NodePublishVolume call, "
        "subsequent calls to NodePublishVolume should only update the contents of the volume. "
        "New mount points will not be seen by a running container."
    ),
    "CSIDriverSpec.volumeLifecycleModes": (
        "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports. The"
        " default if the list is empty is \"Persistent\", which is the usage defined by the CSI "
        "specification and implemented in Kubernetes via the usual PV/PVC mechanism.\n\nThe other"
        " mode is \"Ephemeral\". In this mode, volumes are defined inline inside the pod spec "
        "with CSIVolumeSource and their lifecycle is tied to the lifecycle of that pod. A "
        "driver has to be aware of this because it is only going to get a NodePublishVolume "
        "call for such a volume.\n\nFor more information about implementing this mode, see "
        "https://kubernetes-csi.github.io/docs/ephemeral-local-volumes.html A driver can "
        "support one or more of these modes and more modes may be added in the future.\n\nThis "
        "field is beta. This field is immutable."
    ),
    "VolumeAttachmentSpec.attacher": (
        "attacher indicates the name of the volume driver that MUST handle this request. This "
        "is the name returned by GetPluginName()."
    ),
    "VolumeAttachmentSource.persistentVolumeName": (
        "persistentVolumeName represents the name of the persistent volume to attach."
    ),
    "VolumeAttachmentSpec.nodeName": (
        "nodeName represents the node that the volume should be attached to."
    ),
    "VolumeAttachmentStatus.attached": (
        "attached indicates the volume is successfully attached. This field must only be set by"
        " the entity completing the attach operation, i.e. the external-attacher."
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
CSI_DRIVER = (
    NAME,
    Column("AttachRequired", "boolean", D["CSIDriverSpec.attachRequired"]),
    Column("PodInfoOnMount", "boolean", D["CSIDriverSpec.podInfoOnMount"]),
    Column("StorageCapacity", "boolean", D["CSIDriverSpec.storageCapacity"]),
    Column("TokenRequests", description=D["CSIDriverSpec.tokenRequests"]),
    Column("RequiresRepublish", "boolean", D["CSIDriverSpec.requiresRepublish"]),
    Column("Modes", description=D["CSIDriverSpec.volumeLifecycleModes"]),
    AGE,
)
CSI_NODE = (
    NAME,
    Column("Drivers", "integer", "Drivers indicates the number of CSI drivers registered on the "
           "node"),
    AGE,
)
VOLUME_ATTACHMENT = (
    NAME,
    Column("Attacher", format="name", description=D["VolumeAttachmentSpec.attacher"]),
    Column("PV", description=D["VolumeAttachmentSource.persistentVolumeName"]),
    Column("Node", description=D["VolumeAttachmentSpec.nodeName"]),
    Column("Attached", "boolean", D["VolumeAttachmentStatus.attached"]),
    AGE,
)
CSI_STORAGE_CAPACITY = (
    NAME,
    Column("StorageClassName", description=D["CSIStorageCapacity.storageClassName"]),
    Column("Capacity", description=D["CSIStorageCapacity.capacity"]),
)
