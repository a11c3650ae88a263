import Foundation

/// The built `imagemount` executable, for end-to-end tests.
///
/// SwiftPM puts the test runner (`imagemountPackageTests.xctest`) and the products in the same
/// directory, `<scratch-path>/<triple>/debug` (or `release`), whatever `--scratch-path` was
/// given, so the binary is found next to the running test process. `IMAGEMOUNT_BINARY`
/// overrides that, for running the suite against an installed binary.
public enum ImageMountBinary {
    /// The absolute path of the binary; throws when it has not been built.
    public static func path() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["IMAGEMOUNT_BINARY"], !explicit.isEmpty {
            return explicit
        }
        if let found = located { return found }
        throw Shell.Failure(command: "locate imagemount", status: -1,
                            stderr: "no imagemount next to the test runner (\(runnerDirectory ?? "?")); build it first or set IMAGEMOUNT_BINARY")
    }

    /// Runs `imagemount` with `arguments` (no shell involved in the arguments: each is passed
    /// as is) and returns its exit status, stdout bytes and stderr text.
    ///
    /// Every run of a reading command is also a check that it wrote nothing: each image it was
    /// given (`-a`) must keep its size, mtime and ctime (any write(2) moves them), and a small
    /// image its sha256 (see `ReadOnlyWitness`). So every image the suite builds is covered.
    @discardableResult
    public static func run(_ arguments: [String], environment: [String: String]? = nil,
                           stdin: Data? = nil) throws -> Shell.Output {
        let command = ([try path()] + arguments).map(Shell.quote).joined(separator: " ")
        let witness = ReadOnlyWitness(arguments: arguments)
        let output = try Shell.run(command, stdin: stdin, environment: environment)
        // A mount's server goes on after this returns: FuseMount.close checks its images instead.
        if !ReadOnlyWitness.startsServer(arguments) { witness?.verify(arguments) }
        return output
    }

    /// Runs `imagemount` and requires exit status 0; returns stdout as text.
    @discardableResult
    public static func check(_ arguments: [String], environment: [String: String]? = nil) throws -> String {
        let result = try run(arguments, environment: environment)
        guard result.status == 0 else {
            throw Shell.Failure(command: "imagemount " + arguments.joined(separator: " "),
                                status: result.status, stderr: result.stderr)
        }
        return result.text
    }

    /// The directory of the running test process (the `.xctest` executable on Linux, inside
    /// the `.xctest` bundle on macOS).
    private static let runnerDirectory: String? = {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? Bundle.main.executablePath ?? CommandLine.arguments.first
        guard let executable else { return nil }
        return URL(fileURLWithPath: executable).deletingLastPathComponent().path
    }()

    private static let located: String? = {
        guard var directory = runnerDirectory.map({ URL(fileURLWithPath: $0) }) else { return nil }
        // Walk up a few levels: on macOS the runner sits in <bundle>.xctest/Contents/MacOS.
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("imagemount").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory.deleteLastPathComponent()
        }
        return nil
    }()
}
