import Foundation

/// Runs the `imagemount` executable built next to the test bundle (any --scratch-path).
public enum ImageMountBinary {
    /// `<scratch>/debug/imagemount`, found from the running test executable's own path.
    public static let path: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("imagemount").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return "imagemount"
    }()

    /// Runs `imagemount ARGS...` and returns its status, stdout bytes and stderr text.
    @discardableResult
    public static func run(_ arguments: [String], stdin: Data? = nil, environment: [String: String]? = nil) throws -> Shell.Output {
        try Shell.run(([path] + arguments).map(Shell.quote).joined(separator: " "), stdin: stdin, environment: environment)
    }
}
