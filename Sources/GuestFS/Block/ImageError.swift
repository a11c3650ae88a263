import SystemPackage

/// The one error type of the image stack.
///
/// Lower layers fill in `offset` and `structure`; the layer that opened the file adds `path`
/// (see `withPath(_:)`). Wrapping keeps the inner error in `underlying` instead of flattening
/// it to a string, in the way QEMU's block layer prepends context to an inner error.
public struct ImageError: Error, CustomStringConvertible, Sendable {
    /// The image or host file the problem is in, when known.
    public var path: String?
    /// Byte offset of the offending structure, in the file named by `path`.
    public var offset: UInt64?
    /// What was being read: "GPT header", "EBR", "L2 table", "superblock", ...
    public var structure: String?
    /// What is wrong, as one short phrase.
    public var reason: String
    /// The errno a FUSE reply or exit status should carry.
    public var errno: Errno
    /// The error this one wraps, if any.
    public var underlying: ImageErrorBox?

    public init(path: String? = nil, offset: UInt64? = nil, structure: String? = nil,
                reason: String, errno: Errno = .ioError, underlying: (any Error)? = nil) {
        self.path = path
        self.offset = offset
        self.structure = structure
        self.reason = reason
        self.errno = errno
        self.underlying = underlying.map(ImageErrorBox.init)
    }

    /// The same error with the path filled in when no lower layer gave one.
    public func withPath(_ path: String) -> ImageError {
        var copy = self
        if copy.path == nil { copy.path = path }
        return copy
    }

    /// `<path>: <structure> at 0x<offset>: <reason>`, leaving out what is unknown.
    public var description: String {
        var parts: [String] = []
        if let path { parts.append(path) }
        switch (structure, offset) {
        case let (s?, o?): parts.append("\(s) at 0x\(String(o, radix: 16))")
        case let (s?, nil): parts.append(s)
        case let (nil, o?): parts.append("at 0x\(String(o, radix: 16))")
        case (nil, nil): break
        }
        var text = reason
        // Computed once: each level of a wrapped chain would otherwise render its inner error twice.
        if let inner = underlying?.description, !reason.contains(inner) { text += " (\(inner))" }
        parts.append(text)
        return parts.joined(separator: ": ")
    }
}

/// Holds a wrapped error of any type while keeping `ImageError` a value type.
public struct ImageErrorBox: Sendable, CustomStringConvertible {
    public let error: any Error
    init(_ error: any Error) { self.error = error }
    public var description: String {
        if let e = error as? ImageError { return e.description }
        if let e = error as? Errno { return e.description }
        return "\(error)"
    }
}

extension ImageError {
    /// Converts any error to an `ImageError`, keeping one that already is.
    public static func wrap(_ error: any Error, path: String? = nil) -> ImageError {
        if let e = error as? ImageError { return path.map(e.withPath) ?? e }
        if let e = error as? Errno { return ImageError(path: path, reason: e.description, errno: e) }
        return ImageError(path: path, reason: "\(error)", underlying: error)
    }
}
