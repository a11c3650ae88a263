import CLibFuzzer
@testable import FuzzHarnesses
import Glibc

// libFuzzer target `nbd-block-status`: FuzzHarness.swift (Tests/GuestFSTests/Fuzz) says what it exercises.

/// The input callback. It also carries libFuzzer's well-known name, which libFuzzer's own
/// (unused) `main` refers to, so that the archive links.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzHarness.run("nbd-block-status", data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzTestOneInput))
