import GuestFSBlock
import Synchronization
import SystemPackage

/// Damage met after open that costs part of a filesystem while the rest is served (a bad
/// directory block, a System Use area cut short, a directory loop): each message reported
/// once, to the sink the user of the filesystem set (`GuestFilesystem.setDamageLog`), or to
/// standard error. Shared by the drivers.
package final class DamageLog: Sendable {
    /// Distinct messages kept for de-duplication; past this, messages are dropped.
    package static let maxMessages = 1000
    private let state = Mutex<(seen: Set<String>, sink: (@Sendable (String) -> Void)?)>(([], nil))

    package init() {}

    package func report(_ message: String) {
        let sink: (@Sendable (String) -> Void)?? = state.withLock { s in
            guard s.seen.count < Self.maxMessages, s.seen.insert(message).inserted else { return .none }
            return .some(s.sink)
        }
        guard case .some(let chosen) = sink else { return }
        if let chosen { chosen(message) } else {
            _ = try? FileDescriptor.standardError.writeAll("imagemount: warning: \(message)\n".utf8)
        }
    }

    package func setSink(_ sink: @escaping @Sendable (String) -> Void) { state.withLock { $0.sink = sink } }
}
