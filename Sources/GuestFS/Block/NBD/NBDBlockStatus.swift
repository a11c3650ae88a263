/// What a server's `base:allocation` answer to NBD_CMD_BLOCK_STATUS may be taken to say
/// (NetworkBlockDevice/nbd: doc/proto.md "NBD_CMD_BLOCK_STATUS" and "`base:allocation`
/// metadata context").
///
/// The answer is the server's, so it is hostile like image bytes: a descriptor of length 0
/// (the spec says it MUST NOT be), a first extent that does not start at the request, lengths
/// that run past the request or past the export, more descriptors than we keep. Lengths past
/// the request or the export are clipped (the spec lets the final extent exceed the request);
/// an answer that does not start where it was asked or has an empty descriptor is refused, and
/// the caller reads those bytes instead of trusting it. Descriptors past `maxDescriptors` are
/// dropped: what they covered stays unknown, and unknown bytes are read.
package enum NBDBlockStatus {
    /// The metadata context asked for (doc/proto.md "`base:allocation` metadata context").
    package static let context = "base:allocation"
    /// NBD_STATE_HOLE: no storage is allocated there (it need not read as zeros).
    package static let stateHole: UInt32 = 1
    /// NBD_STATE_ZERO: the range reads as zeros.
    package static let stateZero: UInt32 = 2
    /// Descriptors kept from one answer (a 64 MiB window of 4 KiB alternating extents is 16384;
    /// the cache holds a few windows, `NBDAllocationCache.maxExtents`).
    package static let maxDescriptors = 4096

    /// Why an answer was refused.
    package enum Refusal: Error, Equatable {
        case wrongStart(UInt64)
        case emptyDescriptor(index: Int)
        case oddEntryCount(Int)
        case nothingInside
    }

    /// The extents an answer describes inside `request` (clipped to `exportSize`), adjacent
    /// ones of the same kind merged, starting at `request.lowerBound` and possibly ending before
    /// `request.upperBound` (the server may describe less than asked). `entries` are the
    /// (length, flags) pairs libnbd hands the extent callback, the first at `start`.
    ///
    /// A range counts as zero only with NBD_STATE_ZERO: NBD_STATE_HOLE alone says nothing about
    /// the content (doc/proto.md: a hole "may" read as zeros only if NBD_STATE_ZERO is also set;
    /// qemu-nbd reports an unallocated range of an overlay over a non-zero backing that way).
    package static func extents(entries: [UInt32], start: UInt64, request: Range<UInt64>,
                                exportSize: UInt64) throws(Refusal) -> [NBDExtent] {
        guard entries.count % 2 == 0 else { throw .oddEntryCount(entries.count) }
        guard start == request.lowerBound else { throw .wrongStart(start) }
        let limit = min(request.upperBound, exportSize)
        var out: [NBDExtent] = []
        var at = start
        var index = 0
        while index < min(entries.count / 2, maxDescriptors), at < limit {
            let length = UInt64(entries[2 * index]), flags = entries[2 * index + 1]
            guard length > 0 else { throw .emptyDescriptor(index: index) }
            // at < limit ≤ UInt64.max and length < 2^32: the sum is clipped before it can wrap.
            let end = limit - at < length ? limit : at + length
            let zero = flags & stateZero != 0
            if let last = out.last, last.isZero == zero, last.end == at {
                out[out.count - 1].length += end - at
            } else {
                out.append(NBDExtent(offset: at, length: end - at, isZero: zero))
            }
            at = end
            index += 1
        }
        guard !out.isEmpty else { throw .nothingInside }
        return out
    }
}

/// One run of an export whose content is known to be data (to read) or zeros (not to read).
package struct NBDExtent: Equatable, Sendable {
    package var offset: UInt64
    package var length: UInt64
    package var isZero: Bool
    package var end: UInt64 { offset + length }

    package init(offset: UInt64, length: UInt64, isZero: Bool) {
        self.offset = offset
        self.length = length
        self.isZero = isZero
    }
}
