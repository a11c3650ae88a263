import Testing
@testable import ImageMount

/// Which readdirplus chunks carry attributes on a read-only mount (ReaddirPlusHint.swift):
/// first chunks do until the walker only descends, later chunks do once it stats files, the
/// score is bounded and runs down as attributes go out, so lookups are needed to keep it up.
@Suite struct ReaddirPlusHintTests {
    @Test func freshMountGivesFirstChunksOnly() {
        let hint = ReaddirPlusHint()
        #expect(hint.wantsAttributes(offset: 0))
        #expect(!hint.wantsAttributes(offset: 204))
    }

    @Test func statingFilesTurnsLaterChunksOnAndServingRunsItDown() {
        let hint = ReaddirPlusHint()
        for _ in 0..<(ReaddirPlusHint.threshold / ReaddirPlusHint.lookupCredit) { hint.noteLookup(isDirectory: false) }
        #expect(hint.wantsAttributes(offset: 204))
        // Bounded: however many lookups, the score stops at the cap.
        for _ in 0..<100_000 { hint.noteLookup(isDirectory: false) }
        #expect(hint.current == ReaddirPlusHint.cap)
        // Entries given attributes spend it; below the threshold later chunks go without.
        hint.servedAttributes(ReaddirPlusHint.cap - ReaddirPlusHint.threshold)
        #expect(hint.wantsAttributes(offset: 204))
        hint.servedAttributes(1)
        #expect(!hint.wantsAttributes(offset: 204))
        hint.servedAttributes(10 * ReaddirPlusHint.cap)
        #expect(hint.current == 0)
    }

    @Test func onlyDescendingTurnsFirstChunksOff() {
        let hint = ReaddirPlusHint()
        for _ in 0..<(ReaddirPlusHint.descentRun - 1) { hint.noteLookup(isDirectory: true) }
        #expect(hint.wantsAttributes(offset: 0))
        hint.noteLookup(isDirectory: true)
        #expect(!hint.wantsAttributes(offset: 0))
        // One file looked up: the walker stats again, first chunks carry attributes again.
        hint.noteLookup(isDirectory: false)
        #expect(hint.wantsAttributes(offset: 0))
        #expect(!hint.wantsAttributes(offset: 204))
    }
}
