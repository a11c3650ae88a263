import Foundation

/// Runs the real tools tests use as oracles and image builders (mke2fs, sfdisk, qemu-img, ...).
public enum Shell {
    public struct Failure: Error, CustomStringConvertible {
        public let command: String
        public let status: Int32
        public let stderr: String
        public var description: String { "`\(command)` exited \(status): \(stderr)" }
        public init(command: String, status: Int32, stderr: String) {
            self.command = command; self.status = status; self.stderr = stderr
        }
    }

    public struct Output: Sendable {
        public let status: Int32
        public let stdout: Data
        public let stderr: String
        public var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Runs `/bin/sh -c command` and returns its output whatever the exit status.
    @discardableResult
    public static func run(_ command: String, stdin: Data? = nil, environment: [String: String]? = nil) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        if let environment {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            DispatchQueue.global().async {
                input.fileHandleForWriting.write(stdin)
                try? input.fileHandleForWriting.close()
            }
        }
        // Drain stderr on another thread so a chatty command cannot fill one pipe and block.
        let errData = Locked(Data())
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData.value = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: outData,
                      stderr: String(decoding: errData.value, as: UTF8.self))
    }

    /// Runs a command that must succeed; returns its stdout as text.
    @discardableResult
    public static func check(_ command: String, stdin: Data? = nil) throws -> String {
        let result = try run(command, stdin: stdin)
        guard result.status == 0 else { throw Failure(command: command, status: result.status, stderr: result.stderr) }
        return result.text
    }

    /// Quotes a string for /bin/sh.
    public static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}

/// A tiny lock box for test helpers.
public final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: T
    public init(_ value: T) { _value = value }
    public var value: T {
        get { lock.lock(); defer { lock.unlock() }; return _value }
        set { lock.lock(); defer { lock.unlock() }; _value = newValue }
    }
    public func withValue<R>(_ body: (inout T) throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try body(&_value)
    }
}

/// A scratch directory removed when the value is released.
public final class TempDir: @unchecked Sendable {
    public let path: String
    public init(_ label: String = "imagemount-test") throws {
        let template = NSTemporaryDirectory() + "\(label).XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { throw Shell.Failure(command: "mkdtemp", status: errno, stderr: "") }
        path = String(cString: made)
    }
    public func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
