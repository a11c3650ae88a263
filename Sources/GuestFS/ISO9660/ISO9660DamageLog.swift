import Synchronization
import SystemPackage

/// Damage met after open that costs part of the volume while the rest is served (a directory
/// sector that cannot be read, a System Use area cut short, a directory loop): each message is
/// reported once, to the sink the user of the filesystem set, or to standard error.
/// (The same contract as the ext driver's Ext2DamageLog.)
final class ISO9660DamageLog: Sendable {
    /// Distinct messages kept for de-duplication; past this, messages are dropped.
    static let maxMessages = 1000
    private let state = Mutex<(seen: Set<String>, sink: (@Sendable (String) -> Void)?)>(([], nil))

    func report(_ message: String) {
        let sink: (@Sendable (String) -> Void)?? = state.withLock { s in
            guard s.seen.count < Self.maxMessages, s.seen.insert(message).inserted else { return .none }
            return .some(s.sink)
        }
        guard case .some(let chosen) = sink else { return }
        if let chosen { chosen(message) } else {
            _ = try? FileDescriptor.standardError.writeAll("imagemount: warning: \(message)\n".utf8)
        }
    }

    func setSink(_ sink: @escaping @Sendable (String) -> Void) { state.withLock { $0.sink = sink } }
}
