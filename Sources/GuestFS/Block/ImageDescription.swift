/// What one image format says about a file for `imagemount info` (qemu-img info's fields),
/// in terms every format shares; the format's own facts go in `specific`, as QEMU's
/// `ImageInfoSpecific` union carries them (qapi/block-core.json).
public struct ImageDescription: Sendable {
    public var virtualSize: UInt64
    public var clusterSize: Int?
    public var encrypted = false
    public var dirty = false
    /// Whether the format answers QEMU's bdrv_get_info: without it (parallels) qemu-img info
    /// shows neither a cluster size nor a dirty flag ("dirty-flag" is left out of its JSON).
    public var hasDriverInfo = true
    /// The backing file as the image names it, and the format it records for it.
    public var backingFilename: String?
    public var backingFormat: String?
    public var snapshots: [ImageSnapshot] = []
    public var specific: FormatSpecificInfo?

    public init(virtualSize: UInt64, clusterSize: Int? = nil) {
        self.virtualSize = virtualSize
        self.clusterSize = clusterSize
    }
}

/// One internal snapshot, as qemu-img info's "Snapshot list" shows it.
public struct ImageSnapshot: Sendable, Equatable {
    public var id: String
    public var name: String
    public var vmStateSize: UInt64
    public var dateSeconds: UInt32
    public var dateNanoseconds: UInt32
    public var vmClockNanoseconds: UInt64
    public var icount: UInt64?

    public init(id: String, name: String, vmStateSize: UInt64, dateSeconds: UInt32, dateNanoseconds: UInt32,
                vmClockNanoseconds: UInt64, icount: UInt64?) {
        self.id = id
        self.name = name
        self.vmStateSize = vmStateSize
        self.dateSeconds = dateSeconds
        self.dateNanoseconds = dateNanoseconds
        self.vmClockNanoseconds = vmClockNanoseconds
        self.icount = icount
    }
}

/// "Format specific information": an ordered tree of fields that `info` prints as text
/// ("    lazy refcounts: false") and JSON (`"lazy-refcounts": false`) without knowing the format.
public struct FormatSpecificInfo: Sendable {
    /// The QAPI union tag: "qcow2", "vmdk", ...
    public var type: String
    public var fields: [Field]

    public struct Field: Sendable {
        /// How qemu-img labels it in text ("lazy refcounts") and names it in JSON ("lazy-refcounts").
        public var label: String
        public var key: String
        public var value: Value

        public init(_ label: String, key: String? = nil, _ value: Value) {
            self.label = label
            self.key = key ?? String(label.map { $0 == " " ? "-" : $0 })
            self.value = value
        }
    }

    public indirect enum Value: Sendable, Equatable {
        case string(String)
        case bool(Bool)
        case integer(Int64)
        case object([Field])
        /// A list of objects (vmdk's "extents"): "[0]:"… in text, an array in JSON.
        case list([[Field]])

        public static func == (a: Value, b: Value) -> Bool {
            switch (a, b) {
            case let (.string(x), .string(y)): x == y
            case let (.bool(x), .bool(y)): x == y
            case let (.integer(x), .integer(y)): x == y
            case let (.object(x), .object(y)): x.map(\.key) == y.map(\.key) && zip(x, y).allSatisfy { $0.value == $1.value }
            case let (.list(x), .list(y)): x.count == y.count && zip(x, y).allSatisfy { Value.object($0) == Value.object($1) }
            default: false
            }
        }
    }

    public init(type: String, fields: [Field]) {
        self.type = type
        self.fields = fields
    }

    /// The value of the top-level field with JSON key `key`.
    public func value(_ key: String) -> Value? { fields.first { $0.key == key }?.value }
}

/// What a format's own consistency check found, in qemu-img check's terms.
public struct ImageCheckResult: Sendable {
    /// Refcounts lower than the references, references outside the file, bad entries, COPIED flags.
    public var corruptions = 0
    /// Clusters with a refcount but no reference.
    public var leaks = 0
    /// Problems that kept the check from looking at something (unreadable tables).
    public var checkErrors = 0
    public var corruptionsFixed = 0
    public var leaksFixed = 0
    /// Guest clusters, and those the active tables map (data, compressed or preallocated zero).
    public var totalClusters: UInt64 = 0
    public var allocatedClusters: UInt64 = 0
    public var fragmentedClusters: UInt64 = 0
    public var compressedClusters: UInt64 = 0
    /// End of the last cluster that is referenced or has a refcount (as qemu-img check reports it).
    public var imageEndOffset: UInt64 = 0
    /// Whether the check counts clusters and the image end (qcow2's does; QEMU's vdi_check does
    /// not, and qemu-img check then leaves those fields out).
    public var countsClusters = true
    /// One line per problem, as qemu-img check prints them ("ERROR cluster 5 refcount=0 reference=1").
    public var messages: [String] = []
    /// Lines `add(message:)` left out once `maxMessages` were kept.
    public var messagesLeftOut = 0
    /// Most lines `add(message:)` keeps: a damaged table can have millions of bad entries.
    public static let maxMessages = 100_000
    /// Why the check stopped without a verdict, when it did: QEMU's check returned an error
    /// (vmdk_co_check at a grain past the end of its file), or qemu-img could not open the image
    /// to check it (a VHDX log to replay). qemu-img then prints no verdict and exits 1.
    public var failure: String?

    public init() {}

    /// Keeps `line` among `messages`, or counts it once `maxMessages` are kept.
    public mutating func add(message line: String) {
        if messages.count < Self.maxMessages { messages.append(line) } else { messagesLeftOut += 1 }
    }

    /// qemu-img check's exit status: 1 when the check failed or could not look at everything,
    /// else 2 for corruptions, 3 for leaks only, 0 for a clean image.
    public var exitStatus: Int32 { failure != nil || checkErrors > 0 ? 1 : corruptions > 0 ? 2 : leaks > 0 ? 3 : 0 }
}
