import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// What inspection found out about one installed operating system, named as libguestfs names
/// it (guestfs_inspect_get_* / virt-inspector's XML elements).
public struct OperatingSystem: Sendable {
    /// The root filesystem's device, e.g. `/dev/sda2` or `/dev/centos/root`.
    public let root: String
    public var type = "linux"
    public var distro: String?
    public var productName: String?
    /// Windows: InstallationType ("Client", "Server", "Server Core"), libguestfs's product_variant.
    public var productVariant: String?
    /// Windows: CurrentBuildNumber (libguestfs's build_id).
    public var buildID: String?
    /// Windows: EditionID ("Professional", "ServerStandard"); libguestfs has no field for it.
    public var editionID: String?
    /// Windows: the %SystemRoot% directory on the root filesystem, as spelled there ("/Windows").
    public var windowsSystemRoot: String?
    /// Windows: the current control set of the SYSTEM hive ("ControlSet001").
    public var windowsCurrentControlSet: String?
    /// Windows: drive letters ("C", "D") and the devices they name (MountedDevices), by letter.
    public var driveMappings: [(letter: String, device: String)] = []
    public var majorVersion = 0
    public var minorVersion = 0
    public var hostname: String?
    public var architecture: String?
    public var packageFormat: String?
    public var packageManagement: String?
    public var osinfo: String?
    /// Mountpoints from /etc/fstab that resolve to devices of this guest, `/` first.
    public var mountpoints: [(mountpoint: String, device: String)] = []
    /// The fstab options of each mountpoint, split at commas (vfat's umask=, uid=…).
    public var mountOptions: [String: [String]] = [:]
    /// Entries that could not be used, one line each (device missing, unsupported type…).
    public var warnings: [String] = []

    public init(root: String) { self.root = root }
}
