import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The one-node Ceph cluster of this test run (Tests/Scripts/ceph-cluster.sh: a ceph-mon, a
/// ceph-mgr and a memstore ceph-osd on 127.0.0.1, cephx on, a pool "rbd"), the oracle of the
/// RBD tests (DESIGN.md §5): images are put in with `rbd import`, read back with `rbd export`,
/// snapshotted and locked with the `rbd` tool.
///
/// Started once, by the first test that asks (`CephCluster.shared()`), and stopped when the
/// test process exits (atexit: the script ends the daemons by their pid files). Starting is
/// bounded (the script's own waits, and `timeout` around it): a cluster that cannot start fails
/// every RBD test with the script's message and the tail of the daemon logs, never a hang; the
/// failure is remembered, so later tests fail at once.
public final class CephCluster: Sendable {
    /// The cluster's folder: data, logs, pid files, admin sockets, ceph.conf, keyring.
    public let directory: String
    /// The client configuration (`--rbd-conf`): names the monitor and the keyring.
    public var conf: String { directory + "/ceph.conf" }
    /// client.admin's keyring (`--keyring`).
    public var keyring: String { directory + "/keyring" }
    /// The monitor's v1 address, HOST:PORT (for `rbd://HOST:PORT/POOL/IMAGE`: librados takes a
    /// bare HOST:PORT, other than port 3300, as a v1 address).
    public let monitor: String
    /// How long `start` took, in seconds.
    public let startSeconds: Double

    private init(directory: String, monitor: String, startSeconds: Double) {
        self.directory = directory; self.monitor = monitor; self.startSeconds = startSeconds
    }

    /// The folder the scripts live in (Tests/Scripts), found from this file's path.
    public static var scripts: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Scripts").path
    }

    private static let started: Result<CephCluster, Shell.Failure> = {
        let directory = NSTemporaryDirectory() + "imagemount-ceph.\(getpid())"
        let script = Shell.quote(scripts + "/ceph-cluster.sh")
        let begin = Date()
        // The script bounds each of its waits; the outer timeout bounds the whole start.
        let start = "timeout 240 \(script) start \(Shell.quote(directory))"
        let result: Shell.Output
        do { result = try Shell.run(start) } catch {
            return .failure(Shell.Failure(command: start, status: -1, stderr: "\(error)"))
        }
        // At exit, the daemons are ended by their pid files (system(3): Foundation's Process
        // is not to be relied on while the process exits).
        atexit {
            let directory = NSTemporaryDirectory() + "imagemount-ceph.\(getpid())"
            _ = system("\(Shell.quote(CephCluster.scripts + "/ceph-cluster.sh")) stop \(Shell.quote(directory)) </dev/null >/dev/null 2>&1")
        }
        guard result.status == 0 else {
            return .failure(Shell.Failure(command: start, status: result.status, stderr: result.stderr))
        }
        let conf = (try? String(contentsOfFile: directory + "/ceph.conf", encoding: .utf8)) ?? ""
        // "mon host = [v2:127.0.0.1:PORT,v1:127.0.0.1:PORT1]"
        let monitor = conf.split(separator: "\n").first { $0.hasPrefix("mon host") }
            .flatMap { line -> String? in
                guard let v1 = line.range(of: "v1:"), let close = line.range(of: "]") else { return nil }
                return String(line[v1.upperBound..<close.lowerBound])
            } ?? ""
        return .success(CephCluster(directory: directory, monitor: monitor, startSeconds: Date().timeIntervalSince(begin)))
    }()

    /// The run's cluster, started on first use; throws the start's failure (every time).
    public static func shared() throws -> CephCluster { try started.get() }

    /// `rbd -c CONF ARGUMENTS` (a shell word list), bounded to 120 s.
    @discardableResult
    public func rbd(_ arguments: String) throws -> String {
        try Shell.check("timeout 120 rbd -c \(Shell.quote(conf)) \(arguments)")
    }

    /// `rbd -c CONF ARGUMENTS`, whatever its exit status.
    public func rbdResult(_ arguments: String) throws -> Shell.Output {
        try Shell.run("timeout 120 rbd -c \(Shell.quote(conf)) \(arguments)")
    }

    private static let counter = Locked(0)

    /// A name no other image of this run has: PREFIX-PID-N.
    public func uniqueName(_ prefix: String) -> String {
        let n = Self.counter.withValue { value -> Int in value += 1; return value }
        return "\(prefix)-\(getpid())-\(n)"
    }

    /// `rbd import FILE rbd/NAME` (a fresh name from `prefix`); returns the `rbd:rbd/NAME` name.
    /// `features` is rbd's `--image-feature` list (the default has exclusive-lock).
    public func importImage(_ file: String, prefix: String, features: String? = nil) throws -> (name: String, spec: String) {
        let name = uniqueName(prefix)
        try rbd("import --no-progress \(features.map { "--image-feature \($0) " } ?? "")\(Shell.quote(file)) rbd/\(name)")
        return (name, "rbd:rbd/\(name)")
    }

    /// `rbd export rbd/NAME FILE` (whole image, or one of its snapshots as NAME@SNAP).
    public func exportImage(_ name: String, to file: String) throws {
        try rbd("export --no-progress rbd/\(name) \(Shell.quote(file))")
    }

    /// The options that make imagemount reach this cluster: `--rbd-conf CONF --keyring KEYRING`.
    public var arguments: [String] { ["--rbd-conf", conf, "--keyring", keyring] }
}
