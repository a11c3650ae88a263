import Synchronization
import SystemPackage

/// One report of bad metadata: what, where in the image file, and how large the bad area is.
package struct Qcow2CorruptionEvent: Sendable, Equatable {
    package var structure: String
    package var offset: UInt64?
    package var size: UInt64?
    package var reason: String
}

/// The one path for "the metadata is wrong" (QEMU's qcow2_signal_corruption).
///
/// The first event is logged and kept; later ones are counted but not logged again. The request
/// that found the problem fails with EIO and every other range stays readable. On an image opened
/// for writing the writer installs `onCorruption`, which sets the header's corrupt bit and refuses
/// further writes (QEMU's qcow2_mark_corrupt); read-only images never get one, so nothing is written.
final class Qcow2CorruptionReporter: Sendable {
    let path: String
    private let logSink: (@Sendable (String) -> Void)?
    private let hook = Mutex<(@Sendable () -> Void)?>(nil)

    /// Installs what runs on every report: the writer's "mark corrupt and stop writing".
    func setOnCorruption(_ action: @escaping @Sendable () -> Void) {
        hook.withLock { $0 = action }
    }
    private let state = Mutex<(first: Qcow2CorruptionEvent?, count: Int)>((nil, 0))

    /// - Parameter log: where the first report goes; nil for standard error.
    init(path: String, log: (@Sendable (String) -> Void)? = nil) {
        self.path = path
        self.logSink = log
    }

    /// Records the event and returns the EIO error the caller throws.
    func signalCorruption(_ reason: String, structure: String, offset: UInt64?, size: UInt64? = nil) -> ImageError {
        let event = Qcow2CorruptionEvent(structure: structure, offset: offset, size: size, reason: reason)
        let isFirst = state.withLock { s -> Bool in
            s.count += 1
            if s.first == nil { s.first = event; return true }
            return false
        }
        let error = ImageError(path: path, offset: offset, structure: structure,
                               reason: "image is corrupt: \(reason)", errno: .ioError)
        hook.withLock { $0 }?()
        if isFirst {
            log("imagemount: \(error.description); further corruption reports for this image are suppressed\n")
        }
        return error
    }

    /// Writes a line to the log, or to standard error without one.
    func log(_ line: String) {
        if let logSink { logSink(line) } else { _ = try? FileDescriptor.standardError.writeAll(line.utf8) }
    }

    /// The first event reported, if any.
    var firstEvent: Qcow2CorruptionEvent? { state.withLock { $0.first } }
    /// How many events were reported, including suppressed ones.
    var eventCount: Int { state.withLock { $0.count } }
}
