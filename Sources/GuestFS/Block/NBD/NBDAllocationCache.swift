/// The block status answers an `NBDSource` has had, so that a sequential read asks the server
/// once per window (`NBDSettings.blockStatusWindow`) rather than once per read.
///
/// A unit of its own (STYLE.md rule 10): it knows extents, not NBD. It holds windows, each the
/// contiguous extents of one answer; inserting a window drops those it overlaps, and past
/// `maxWindows` windows or `maxExtents` extents the least recently used go. A write drops the
/// windows it touches (what was a hole may hold data now) and bumps `generation`, so that an
/// answer asked for before the write and inserted after it is thrown away (`insert` checks).
package struct NBDAllocationCache: Sendable {
    package static let maxWindows = 32
    package static let maxExtents = 8192

    private struct Window {
        var extents: [NBDExtent]
        var lastUse: UInt64
        var range: Range<UInt64> { extents[0].offset..<extents[extents.count - 1].end }
    }
    private var windows: [Window] = []
    private var extentCount = 0
    private var clock: UInt64 = 0
    /// Bumped by every `invalidate`.
    package private(set) var generation: UInt64 = 0

    package init() {}

    package var windowCount: Int { windows.count }
    package var totalExtents: Int { extentCount }

    /// Keeps `extents` (contiguous, ascending, non-empty; as `NBDBlockStatus.extents` returns)
    /// unless a write happened since `generation` was read.
    package mutating func insert(_ extents: [NBDExtent], generation: UInt64) {
        guard generation == self.generation, !extents.isEmpty else { return }
        let kept = Array(extents.prefix(Self.maxExtents))
        let range = kept[0].offset..<kept[kept.count - 1].end
        remove { $0.range.overlaps(range) }
        while !windows.isEmpty, windows.count >= Self.maxWindows || extentCount + kept.count > Self.maxExtents {
            let oldest = windows.indices.min { windows[$0].lastUse < windows[$1].lastUse }!
            extentCount -= windows[oldest].extents.count
            windows.remove(at: oldest)
        }
        clock += 1
        windows.append(Window(extents: kept, lastUse: clock))
        extentCount += kept.count
    }

    /// What is known of `[offset, end)` from `offset` on: the extents (clipped to the range) up
    /// to the end of the window holding `offset`; empty when no window holds it.
    package mutating func lookup(from offset: UInt64, to end: UInt64) -> [NBDExtent] {
        guard offset < end, let w = windows.firstIndex(where: { $0.range.contains(offset) }) else { return [] }
        clock += 1
        windows[w].lastUse = clock
        let extents = windows[w].extents
        // The first extent ending after `offset` (binary search: extents are ascending).
        var low = 0, high = extents.count - 1
        while low < high {
            let mid = (low + high) / 2
            if extents[mid].end <= offset { low = mid + 1 } else { high = mid }
        }
        var out: [NBDExtent] = []
        for e in extents[low...] {
            if e.offset >= end { break }
            let start = max(e.offset, offset), stop = min(e.end, end)
            out.append(NBDExtent(offset: start, length: stop - start, isZero: e.isZero))
        }
        return out
    }

    /// Forgets what is known of `range` (a write went there).
    package mutating func invalidate(_ range: Range<UInt64>) {
        generation &+= 1
        remove { $0.range.overlaps(range) }
    }

    private mutating func remove(where match: (Window) -> Bool) {
        windows.removeAll { w in
            guard match(w) else { return false }
            extentCount -= w.extents.count
            return true
        }
    }
}
