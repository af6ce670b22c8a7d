"""The column definitions of kube-apiserver's Tables for the platform's own objects: admission
policy bindings and mutating admission policies, API priority and fairness (flow schemas,
priority levels), dynamic resource allocation (device classes, resource claims and their
templates, resource slices), service CIDRs and IP addresses, component statuses, cluster
trust bundles, lease candidates, volume attributes classes, storage versions and storage
version migrations.

Data, like ``yurthub.kube.columns``: names, types, formats and priorities as kube-apiserver's
printers register them (``pkg/printers/internalversion/printers.go``, ``AddHandlers``, v1.32,
read in the reference index's file 59882936); descriptions the literal strings that code
carries (typos included), or the ``SwaggerDoc()`` strings it quotes as the kubernetes Python
client (v37) carries them, one line per paragraph as that client joins them.  Where a column
quotes a key ``ObjectMeta`` does not have (a lease candidate's BinaryVersion and
EmulationVersion), Go's map gives ``""``.  Apache-2.0, (c) The Kubernetes Authors.
"""

from __future__ import annotations

from yurthub.kube.columns import AGE, NAME, Column

DESCRIPTIONS: dict[str, str] = {
    "PriorityLevelConfigurationReference.name": (
        "`name` is the name of the priority level configuration being referenced Required."
    ),
    "FlowSchemaSpec.matchingPrecedence": (
        "`matchingPrecedence` is used to choose among the FlowSchemas that match a given "
        "request. The chosen FlowSchema is among those with the numerically lowest (which we "
        "take to be logically highest) MatchingPrecedence.  Each MatchingPrecedence value must "
        "be ranged in [1,10000]. Note that if the precedence is not specified, it will be set "
        "to 1000 as default."
    ),
    "FlowSchemaSpec.distinguisherMethod": (
        "`distinguisherMethod` defines how to compute the flow distinguisher for requests that "
        "match this schema. `nil` specifies that the distinguisher is disabled and thus will "
        "always be the empty string."
    ),
    "PriorityLevelConfigurationSpec.type": (
        "`type` indicates whether this priority level is subject to limitation on request "
        "execution.  A value of `\"Exempt\"` means that requests of this priority level are "
        "not subject to a limit (and thus are never queued) and do not detract from the "
        "capacity made available to other priority levels.  A value of `\"Limited\"` means "
        "that (a) requests of this priority level _are_ subject to limits and (b) some of the "
        "server's limited capacity is made available exclusively to this priority level. "
        "Required."
    ),
    "LimitedPriorityLevelConfiguration.nominalConcurrencyShares": (
        "`nominalConcurrencyShares` (NCS) contributes to the computation of the "
        "NominalConcurrencyLimit (NominalCL) of this level. This is the number of execution "
        "seats available at this priority level. This is used both for requests dispatched "
        "from this priority level as well as requests dispatched from other priority levels "
        "borrowing seats from this level. The server's concurrency limit (ServerCL) is divided "
        "among the Limited priority levels in proportion to their NCS values:  NominalCL(i)  = "
        "ceil( ServerCL * NCS(i) / sum_ncs ) sum_ncs = sum[priority level k] NCS(k)  Bigger "
        "numbers mean a larger nominal concurrency limit, at the expense of every other "
        "priority level.  If not specified, this field defaults to a value of 30.  Setting "
        "this field to zero supports the construction of a \"jail\" for this priority level "
        "that is used to hold some request(s)"
    ),
    "QueuingConfiguration.queues": (
        "`queues` is the number of queues for this priority level. The queues exist "
        "independently at each apiserver. The value must be positive.  Setting it to 1 "
        "effectively precludes shufflesharding and thus makes the distinguisher method of "
        "associated flow schemas irrelevant.  This field has a default value of 64."
    ),
    "QueuingConfiguration.handSize": (
        "`handSize` is a small positive number that configures the shuffle sharding of "
        "requests into queues.  When enqueuing a request at this priority level the request's "
        "flow identifier (a string pair) is hashed and the hash value is used to shuffle the "
        "list of queues and deal a hand of the size specified here.  The request is put into "
        "one of the shortest queues in that hand. `handSize` must be no larger than `queues`, "
        "and should be significantly smaller (so that a few heavy flows do not saturate most "
        "of the queues).  See the user-facing documentation for more extensive guidance on "
        "setting this field.  This field has a default value of 8."
    ),
    "QueuingConfiguration.queueLengthLimit": (
        "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given "
        "queue of this priority level at a time; excess requests are rejected.  This value "
        "must be positive.  If not specified, it will be defaulted to 50."
    ),
    "StorageVersionStatus.commonEncodingVersion": (
        "commonEncodingVersion is set to an encoding storage version if all API server "
        "instances share that same version. If they don't share one storage version, this "
        "field is left empty. API servers should finish updating its storageVersionStatus "
        "entry before serving write operations, so that this field will be in sync with the "
        "reality."
    ),
    "StorageVersionStatus.storageVersions": (
        "storageVersions lists the reported versions per API server instance."
    ),
    "ResourceSliceSpec.nodeName": (
        "NodeName identifies the node which provides the resources in this pool. A field "
        "selector can be used to list only ResourceSlice objects belonging to a certain node.  "
        "This field can be used to limit access from nodes to ResourceSlices with the same "
        "node name. It also indicates to autoscalers that adding new nodes of the same type "
        "as some old node might also make new resources available.  Exactly one of NodeName, "
        "NodeSelector, AllNodes, and PerDeviceNodeSelection must be set. This field is "
        "immutable."
    ),
    "ResourceSliceSpec.driver": (
        "Driver identifies the DRA driver providing the capacity information. A field "
        "selector can be used to list only ResourceSlice objects with a certain driver name.  "
        "Must be a DNS subdomain and should end with a DNS domain owned by the vendor of the "
        "driver. It should use only lower case characters. This field is immutable."
    ),
    "ResourcePool.name": (
        "Name is used to identify the pool. For node-local devices, this is often the node "
        "name, but this is not required. A field selector can be used to list only "
        "ResourceSlice objects belonging to a certain pool.  It must not be longer than 253 "
        "characters and must consist of one or more DNS sub-domains separated by slashes. "
        "This field is immutable."
    ),
    "ServiceCIDRSpec.cidrs": (
        "cidrs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or "
        "\"2001:db8::/64\") from which to assign service cluster IPs. Max of two CIDRs is "
        "allowed, one of each IP family. This field is immutable."
    ),
    "IPAddressSpec.parentRef": (
        "ParentRef references the resource that an IPAddress is attached to. An IPAddress "
        "must reference a parent object."
    ),
    "ClusterTrustBundleSpec.signerName": (
        "signerName indicates the associated signer, if any.  In order to create or update a "
        "ClusterTrustBundle that sets signerName, you must have the following cluster-scoped "
        "permission: group=certificates.k8s.io resource=signers resourceName=<the signer "
        "name> verb=attest.  If signerName is not empty, then the ClusterTrustBundle object "
        "must be named with the signer name as a prefix (translating slashes to colons). For "
        "example, for the signer name `example.com/foo`, valid ClusterTrustBundle object names "
        "include `example.com:foo:abc` and `example.com:foo:v1`.  If signerName is empty, then "
        "the ClusterTrustBundle object's name must not have such a prefix.  List/watch "
        "requests for ClusterTrustBundles can filter on this field using a "
        "`spec.signerName=NAME` field selector."
    ),
    "LeaseCandidateSpec.leaseName": (
        "leaseName is the name of the lease for which this candidate is contending. This "
        "field is immutable."
    ),
    "VolumeAttributesClass.driverName": (
        "driverName is the name of the CSI driver This field is immutable."
    ),
}

D = DESCRIPTIONS

_PARAM_KIND = Column("ParamKind", description="ParamKind specifies the kind of resources used "
                     "to parameterize this policy")
ADMISSION_POLICY_BINDING = (
    NAME,
    Column("PolicyName", description="PolicyName indicates the policy definition which the "
           "policy binding binded to"),
    Column("ParamRef", description="ParamRef indicates the param resource which sets the "
           "configration param"),
    AGE,
)
MUTATING_ADMISSION_POLICY = (
    NAME,
    Column("Mutations", "integer", "Mutation indicates the number of mutations rules defined "
           "in this configuration"),
    _PARAM_KIND,
    AGE,
)
FLOW_SCHEMA = (
    NAME,
    Column("PriorityLevel", description=D["PriorityLevelConfigurationReference.name"]),
    Column("MatchingPrecedence", description=D["FlowSchemaSpec.matchingPrecedence"]),
    Column("DistinguisherMethod", description=D["FlowSchemaSpec.distinguisherMethod"]),
    AGE,
    Column("MissingPL", description="references a broken or non-existent "
           "PriorityLevelConfiguration"),
)
PRIORITY_LEVEL_CONFIGURATION = (
    NAME,
    Column("Type", description=D["PriorityLevelConfigurationSpec.type"]),
    Column("NominalConcurrencyShares",
           description=D["LimitedPriorityLevelConfiguration.nominalConcurrencyShares"]),
    Column("Queues", description=D["QueuingConfiguration.queues"]),
    Column("HandSize", description=D["QueuingConfiguration.handSize"]),
    Column("QueueLengthLimit", description=D["QueuingConfiguration.queueLengthLimit"]),
    AGE,
)
STORAGE_VERSION = (
    NAME,
    Column("CommonEncodingVersion", description=D["StorageVersionStatus.commonEncodingVersion"]),
    Column("StorageVersions", description=D["StorageVersionStatus.storageVersions"]),
    AGE,
)
NAME_AND_AGE = (NAME, AGE)  # device classes and resource claim templates register these two
RESOURCE_CLAIM = (
    NAME,
    Column("State", description="A summary of the current state (allocated, pending, "
           "reserved, etc.)."),
    AGE,
)
RESOURCE_SLICE = (
    NAME,
    Column("Node", description=D["ResourceSliceSpec.nodeName"]),
    Column("Driver", description=D["ResourceSliceSpec.driver"]),
    Column("Pool", description=D["ResourcePool.name"]),
    AGE,
)
SERVICE_CIDR = (NAME, Column("CIDRs", description=D["ServiceCIDRSpec.cidrs"]), AGE)
# Two columns, and kube-apiserver's rows carry a third cell (the age) kubectl does not show.
IP_ADDRESS = (NAME, Column("ParentRef", description=D["IPAddressSpec.parentRef"]))
# Name without its "name" format, as printers.go registers it.
STORAGE_VERSION_MIGRATION = (
    Column("Name", description=NAME.description),
    Column("Resource", description="Fully qualified resource to migrate"),
)
COMPONENT_STATUS = (
    NAME,
    Column("Status", description="Status of the component conditions"),
    Column("Message", description="Message of the component conditions"),
    Column("Error", description="Error of the component conditions"),
)
CLUSTER_TRUST_BUNDLE = (NAME, Column("SignerName",
                                     description=D["ClusterTrustBundleSpec.signerName"]))
LEASE_CANDIDATE = (
    NAME,
    Column("LeaseName", description=D["LeaseCandidateSpec.leaseName"]),
    Column("BinaryVersion"),
    Column("EmulationVersion"),
    AGE,
)
VOLUME_ATTRIBUTES_CLASS = (NAME, Column("DriverName",
                                        description=D["VolumeAttributesClass.driverName"]), AGE)
