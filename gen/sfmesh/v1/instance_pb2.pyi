from google.protobuf import struct_pb2 as _struct_pb2
from sfmesh.v1 import node_service_pb2 as _node_service_pb2
from sfmesh.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DiskBus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISK_BUS_UNSPECIFIED: _ClassVar[DiskBus]
    DISK_BUS_IDE: _ClassVar[DiskBus]
    DISK_BUS_SATA: _ClassVar[DiskBus]
    DISK_BUS_SCSI: _ClassVar[DiskBus]
    DISK_BUS_USB: _ClassVar[DiskBus]
    DISK_BUS_VIRTIO: _ClassVar[DiskBus]
    DISK_BUS_NVME: _ClassVar[DiskBus]

class DiskType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISK_TYPE_UNSPECIFIED: _ClassVar[DiskType]
    DISK_TYPE_DISK: _ClassVar[DiskType]
    DISK_TYPE_CDROM: _ClassVar[DiskType]

class NicModel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NIC_MODEL_UNSPECIFIED: _ClassVar[NicModel]
    NIC_MODEL_I82551: _ClassVar[NicModel]
    NIC_MODEL_I82557B: _ClassVar[NicModel]
    NIC_MODEL_I82559ER: _ClassVar[NicModel]
    NIC_MODEL_NE2K_PCI: _ClassVar[NicModel]
    NIC_MODEL_PCNET: _ClassVar[NicModel]
    NIC_MODEL_RTL8139: _ClassVar[NicModel]
    NIC_MODEL_E1000: _ClassVar[NicModel]
    NIC_MODEL_E1000E: _ClassVar[NicModel]
    NIC_MODEL_VIRTIO: _ClassVar[NicModel]

class VideoModel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIDEO_MODEL_UNSPECIFIED: _ClassVar[VideoModel]
    VIDEO_MODEL_VGA: _ClassVar[VideoModel]
    VIDEO_MODEL_CIRRUS: _ClassVar[VideoModel]
    VIDEO_MODEL_QXL: _ClassVar[VideoModel]
    VIDEO_MODEL_VIRTIO: _ClassVar[VideoModel]
    VIDEO_MODEL_BOCHS: _ClassVar[VideoModel]
    VIDEO_MODEL_RAMFB: _ClassVar[VideoModel]
    VIDEO_MODEL_NONE: _ClassVar[VideoModel]

class VdiType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VDI_TYPE_UNSPECIFIED: _ClassVar[VdiType]
    VDI_TYPE_VNC: _ClassVar[VdiType]
    VDI_TYPE_SPICE: _ClassVar[VdiType]
    VDI_TYPE_SPICECONCURRENT: _ClassVar[VdiType]

class ConfigDrive(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONFIG_DRIVE_UNSPECIFIED: _ClassVar[ConfigDrive]
    CONFIG_DRIVE_OPENSTACK_DISK: _ClassVar[ConfigDrive]
    CONFIG_DRIVE_NONE: _ClassVar[ConfigDrive]

class InstanceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INSTANCE_STATE_UNSPECIFIED: _ClassVar[InstanceState]
    INSTANCE_STATE_INITIAL: _ClassVar[InstanceState]
    INSTANCE_STATE_PREFLIGHT: _ClassVar[InstanceState]
    INSTANCE_STATE_CREATING: _ClassVar[InstanceState]
    INSTANCE_STATE_CREATED: _ClassVar[InstanceState]
    INSTANCE_STATE_DELETE_WAIT: _ClassVar[InstanceState]
    INSTANCE_STATE_DELETED: _ClassVar[InstanceState]
    INSTANCE_STATE_ERROR: _ClassVar[InstanceState]
    INSTANCE_STATE_INITIAL_ERROR: _ClassVar[InstanceState]
    INSTANCE_STATE_PREFLIGHT_ERROR: _ClassVar[InstanceState]
    INSTANCE_STATE_CREATING_ERROR: _ClassVar[InstanceState]
    INSTANCE_STATE_CREATED_ERROR: _ClassVar[InstanceState]
    INSTANCE_STATE_DELETE_WAIT_ERROR: _ClassVar[InstanceState]

class PowerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POWER_STATE_UNSPECIFIED: _ClassVar[PowerState]
    POWER_STATE_INITIAL: _ClassVar[PowerState]
    POWER_STATE_ON: _ClassVar[PowerState]
    POWER_STATE_OFF: _ClassVar[PowerState]
    POWER_STATE_PAUSED: _ClassVar[PowerState]
    POWER_STATE_CRASHED: _ClassVar[PowerState]
    POWER_STATE_TRANSITION_TO_ON: _ClassVar[PowerState]
    POWER_STATE_TRANSITION_TO_OFF: _ClassVar[PowerState]
    POWER_STATE_TRANSITION_TO_PAUSED: _ClassVar[PowerState]

class InterfaceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERFACE_STATE_UNSPECIFIED: _ClassVar[InterfaceState]
    INTERFACE_STATE_INITIAL: _ClassVar[InterfaceState]
    INTERFACE_STATE_CREATED: _ClassVar[InterfaceState]
    INTERFACE_STATE_DELETED: _ClassVar[InterfaceState]
    INTERFACE_STATE_ERROR: _ClassVar[InterfaceState]
DISK_BUS_UNSPECIFIED: DiskBus
DISK_BUS_IDE: DiskBus
DISK_BUS_SATA: DiskBus
DISK_BUS_SCSI: DiskBus
DISK_BUS_USB: DiskBus
DISK_BUS_VIRTIO: DiskBus
DISK_BUS_NVME: DiskBus
DISK_TYPE_UNSPECIFIED: DiskType
DISK_TYPE_DISK: DiskType
DISK_TYPE_CDROM: DiskType
NIC_MODEL_UNSPECIFIED: NicModel
NIC_MODEL_I82551: NicModel
NIC_MODEL_I82557B: NicModel
NIC_MODEL_I82559ER: NicModel
NIC_MODEL_NE2K_PCI: NicModel
NIC_MODEL_PCNET: NicModel
NIC_MODEL_RTL8139: NicModel
NIC_MODEL_E1000: NicModel
NIC_MODEL_E1000E: NicModel
NIC_MODEL_VIRTIO: NicModel
VIDEO_MODEL_UNSPECIFIED: VideoModel
VIDEO_MODEL_VGA: VideoModel
VIDEO_MODEL_CIRRUS: VideoModel
VIDEO_MODEL_QXL: VideoModel
VIDEO_MODEL_VIRTIO: VideoModel
VIDEO_MODEL_BOCHS: VideoModel
VIDEO_MODEL_RAMFB: VideoModel
VIDEO_MODEL_NONE: VideoModel
VDI_TYPE_UNSPECIFIED: VdiType
VDI_TYPE_VNC: VdiType
VDI_TYPE_SPICE: VdiType
VDI_TYPE_SPICECONCURRENT: VdiType
CONFIG_DRIVE_UNSPECIFIED: ConfigDrive
CONFIG_DRIVE_OPENSTACK_DISK: ConfigDrive
CONFIG_DRIVE_NONE: ConfigDrive
INSTANCE_STATE_UNSPECIFIED: InstanceState
INSTANCE_STATE_INITIAL: InstanceState
INSTANCE_STATE_PREFLIGHT: InstanceState
INSTANCE_STATE_CREATING: InstanceState
INSTANCE_STATE_CREATED: InstanceState
INSTANCE_STATE_DELETE_WAIT: InstanceState
INSTANCE_STATE_DELETED: InstanceState
INSTANCE_STATE_ERROR: InstanceState
INSTANCE_STATE_INITIAL_ERROR: InstanceState
INSTANCE_STATE_PREFLIGHT_ERROR: InstanceState
INSTANCE_STATE_CREATING_ERROR: InstanceState
INSTANCE_STATE_CREATED_ERROR: InstanceState
INSTANCE_STATE_DELETE_WAIT_ERROR: InstanceState
POWER_STATE_UNSPECIFIED: PowerState
POWER_STATE_INITIAL: PowerState
POWER_STATE_ON: PowerState
POWER_STATE_OFF: PowerState
POWER_STATE_PAUSED: PowerState
POWER_STATE_CRASHED: PowerState
POWER_STATE_TRANSITION_TO_ON: PowerState
POWER_STATE_TRANSITION_TO_OFF: PowerState
POWER_STATE_TRANSITION_TO_PAUSED: PowerState
INTERFACE_STATE_UNSPECIFIED: InterfaceState
INTERFACE_STATE_INITIAL: InterfaceState
INTERFACE_STATE_CREATED: InterfaceState
INTERFACE_STATE_DELETED: InterfaceState
INTERFACE_STATE_ERROR: InterfaceState

class DiskSpec(_message.Message):
    __slots__ = ("size", "base", "bus", "type")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    BASE_FIELD_NUMBER: _ClassVar[int]
    BUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    size: int
    base: str
    bus: DiskBus
    type: DiskType
    def __init__(self, size: _Optional[int] = ..., base: _Optional[str] = ..., bus: _Optional[_Union[DiskBus, str]] = ..., type: _Optional[_Union[DiskType, str]] = ...) -> None: ...

class NetworkSpec(_message.Message):
    __slots__ = ("network_uuid", "address", "macaddress", "model", "float")
    NETWORK_UUID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MACADDRESS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FLOAT_FIELD_NUMBER: _ClassVar[int]
    network_uuid: str
    address: str
    macaddress: str
    model: NicModel
    float: bool
    def __init__(self, network_uuid: _Optional[str] = ..., address: _Optional[str] = ..., macaddress: _Optional[str] = ..., model: _Optional[_Union[NicModel, str]] = ..., float: _Optional[bool] = ...) -> None: ...

class VideoSpec(_message.Message):
    __slots__ = ("model", "memory", "vdi")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    VDI_FIELD_NUMBER: _ClassVar[int]
    model: VideoModel
    memory: int
    vdi: VdiType
    def __init__(self, model: _Optional[_Union[VideoModel, str]] = ..., memory: _Optional[int] = ..., vdi: _Optional[_Union[VdiType, str]] = ...) -> None: ...

class Interface(_message.Message):
    __slots__ = ("uuid", "state", "metadata", "version", "network_uuid", "instance_uuid", "macaddr", "ipv4", "order", "model", "floating")
    UUID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NETWORK_UUID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_UUID_FIELD_NUMBER: _ClassVar[int]
    MACADDR_FIELD_NUMBER: _ClassVar[int]
    IPV4_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FLOATING_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    state: InterfaceState
    metadata: _struct_pb2.Struct
    version: int
    network_uuid: str
    instance_uuid: str
    macaddr: str
    ipv4: str
    order: int
    model: NicModel
    floating: str
    def __init__(self, uuid: _Optional[str] = ..., state: _Optional[_Union[InterfaceState, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., version: _Optional[int] = ..., network_uuid: _Optional[str] = ..., instance_uuid: _Optional[str] = ..., macaddr: _Optional[str] = ..., ipv4: _Optional[str] = ..., order: _Optional[int] = ..., model: _Optional[_Union[NicModel, str]] = ..., floating: _Optional[str] = ...) -> None: ...

class Disk(_message.Message):
    __slots__ = ("device", "bus", "size", "blob_uuid", "snapshot_ignores")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    BUS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    BLOB_UUID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_IGNORES_FIELD_NUMBER: _ClassVar[int]
    device: str
    bus: DiskBus
    size: int
    blob_uuid: str
    snapshot_ignores: bool
    def __init__(self, device: _Optional[str] = ..., bus: _Optional[_Union[DiskBus, str]] = ..., size: _Optional[int] = ..., blob_uuid: _Optional[str] = ..., snapshot_ignores: _Optional[bool] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("uuid", "state", "metadata", "version", "cpus", "memory", "name", "namespace", "disk_spec", "ssh_key", "user_data", "video", "uefi", "configdrive", "nvram_template", "secure_boot", "machine_type", "side_channels", "agent_state", "agent_start_time", "agent_system_boot_time", "error_message", "console_port", "node", "power_state", "vdi_port", "vdi_tls_port", "interfaces", "disks", "requested_placement", "node_state")
    UUID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DISK_SPEC_FIELD_NUMBER: _ClassVar[int]
    SSH_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_DATA_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    UEFI_FIELD_NUMBER: _ClassVar[int]
    CONFIGDRIVE_FIELD_NUMBER: _ClassVar[int]
    NVRAM_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    SECURE_BOOT_FIELD_NUMBER: _ClassVar[int]
    MACHINE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIDE_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    AGENT_STATE_FIELD_NUMBER: _ClassVar[int]
    AGENT_START_TIME_FIELD_NUMBER: _ClassVar[int]
    AGENT_SYSTEM_BOOT_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_PORT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    POWER_STATE_FIELD_NUMBER: _ClassVar[int]
    VDI_PORT_FIELD_NUMBER: _ClassVar[int]
    VDI_TLS_PORT_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    DISKS_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    NODE_STATE_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    state: InstanceState
    metadata: _struct_pb2.Struct
    version: int
    cpus: int
    memory: int
    name: str
    namespace: str
    disk_spec: _containers.RepeatedCompositeFieldContainer[DiskSpec]
    ssh_key: str
    user_data: str
    video: VideoSpec
    uefi: bool
    configdrive: ConfigDrive
    nvram_template: str
    secure_boot: bool
    machine_type: str
    side_channels: _containers.RepeatedScalarFieldContainer[str]
    agent_state: str
    agent_start_time: float
    agent_system_boot_time: float
    error_message: str
    console_port: int
    node: str
    power_state: PowerState
    vdi_port: int
    vdi_tls_port: int
    interfaces: _containers.RepeatedCompositeFieldContainer[Interface]
    disks: _containers.RepeatedCompositeFieldContainer[Disk]
    requested_placement: str
    node_state: _node_service_pb2.NodeState
    def __init__(self, uuid: _Optional[str] = ..., state: _Optional[_Union[InstanceState, str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., version: _Optional[int] = ..., cpus: _Optional[int] = ..., memory: _Optional[int] = ..., name: _Optional[str] = ..., namespace: _Optional[str] = ..., disk_spec: _Optional[_Iterable[_Union[DiskSpec, _Mapping]]] = ..., ssh_key: _Optional[str] = ..., user_data: _Optional[str] = ..., video: _Optional[_Union[VideoSpec, _Mapping]] = ..., uefi: _Optional[bool] = ..., configdrive: _Optional[_Union[ConfigDrive, str]] = ..., nvram_template: _Optional[str] = ..., secure_boot: _Optional[bool] = ..., machine_type: _Optional[str] = ..., side_channels: _Optional[_Iterable[str]] = ..., agent_state: _Optional[str] = ..., agent_start_time: _Optional[float] = ..., agent_system_boot_time: _Optional[float] = ..., error_message: _Optional[str] = ..., console_port: _Optional[int] = ..., node: _Optional[str] = ..., power_state: _Optional[_Union[PowerState, str]] = ..., vdi_port: _Optional[int] = ..., vdi_tls_port: _Optional[int] = ..., interfaces: _Optional[_Iterable[_Union[Interface, _Mapping]]] = ..., disks: _Optional[_Iterable[_Union[Disk, _Mapping]]] = ..., requested_placement: _Optional[str] = ..., node_state: _Optional[_Union[_node_service_pb2.NodeState, str]] = ...) -> None: ...
