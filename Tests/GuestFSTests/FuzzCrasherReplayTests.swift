import Foundation
import XCTest

/// Every input that ever crashed a fuzz target (fuzz/crashers/TARGET/*) goes through that target's
/// harness again, and so does every committed seed (fuzz/corpus/TARGET/*): each must end in a
/// thrown-and-caught error or in success, never in a trap. A trap kills the test process, which
/// names the input last printed.
///
/// (The first five, issue 13's known crashes, are in fuzz/CRASHERS.md.)
final class FuzzCrasherReplayTests: XCTestCase {
    static let fuzzDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fuzz")

    func testCrashersNoLongerCrash() throws { try replay("crashers") }

    func testSeedCorporaParse() throws { try replay("corpus") }

    func replay(_ folder: String) throws {
        let base = Self.fuzzDirectory.appendingPathComponent(folder)
        let files = FileManager.default
        var replayed = 0
        for target in FuzzHarness.targets.keys.sorted() {
            let dir = base.appendingPathComponent(target)
            guard let names = try? files.contentsOfDirectory(atPath: dir.path) else { continue }
            for name in names.sorted() where !name.hasPrefix(".") {
                let path = dir.appendingPathComponent(name).path
                print("fuzz replay: \(target) \(folder)/\(target)/\(name)")
                FuzzHarness.run(target, Array(try Data(contentsOf: URL(fileURLWithPath: path))))
                replayed += 1
            }
        }
        // The folders hold only target names: a misspelt one would be skipped silently.
        for entry in (try? files.contentsOfDirectory(atPath: base.path)) ?? [] where !entry.hasPrefix(".") {
            XCTAssertNotNil(FuzzHarness.targets[entry], "fuzz/\(folder)/\(entry) names no fuzz target")
        }
        print("fuzz replay: \(replayed) inputs from fuzz/\(folder)")
    }
}
