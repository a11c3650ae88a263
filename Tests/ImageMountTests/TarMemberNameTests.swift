import Testing
@testable import ImageMount

/// `TarMemberName`: what tar-in accepts as a member name, as GNU tar strips and more strictly.
@Suite struct TarMemberNameTests {
    static func parse(_ s: String) -> [[UInt8]]? {
        if case .success(let p) = TarMemberName.components(Array(s.utf8)) { return p.components }
        return nil
    }

    static func problem(_ bytes: [UInt8]) -> TarMemberName.Problem? {
        if case .failure(let p) = TarMemberName.components(bytes) { return p }
        return nil
    }

    @Test func namesThatStayInside() {
        #expect(Self.parse("./a/b") == [Array("a".utf8), Array("b".utf8)])
        #expect(Self.parse("a//b/./c/") == [Array("a".utf8), Array("b".utf8), Array("c".utf8)])
        #expect(Self.parse("./") == [] && Self.parse(".") == [] && Self.parse("/") == [])
        #expect(Self.parse("/etc/passwd") == [Array("etc".utf8), Array("passwd".utf8)])
        #expect(Self.parse("a..b/..c/d..") != nil)
        if case .success(let p) = TarMemberName.components(Array("/x".utf8)) { #expect(p.strippedRoot) }
    }

    @Test func namesThatWouldLeave() {
        for bad in ["..", "../x", "a/../b", "a/b/..", "/../etc", "./../x"] {
            #expect(Self.problem(Array(bad.utf8)) == .dotDot, "\(bad)")
        }
        let long = String(repeating: "n", count: 256)
        #expect(Self.problem(Array("a/\(long)".utf8)) == .component(.tooLong(256)))
        #expect(Self.problem([UInt8](repeating: 0x61, count: 5000)) == .tooLong(5000))
    }
}
