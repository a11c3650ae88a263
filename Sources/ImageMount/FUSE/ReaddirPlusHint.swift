import Synchronization

/// Whether a readdirplus reply should carry each entry's attributes, learnt from what the
/// walker does with the names it lists (read-only mounts only, where the kernel sends every
/// listing chunk as readdirplus: FuseServer.initialize turns READDIRPLUS_AUTO off there).
///
/// Attributes in a listing save a lookup round trip per name when the walker then stats every
/// name (`du`, `ls -l`, `find -size`), and cost an inode read here and a dentry and inode in the
/// kernel per name when it does not (`find`, `ls`): on a 1 000 000-file filesystem, a `du -s`
/// took 4x the kernel's time in lookups, and a `find` given attributes for every name 7x
/// (bench/million-files.sh). An entry without attributes (node id 0) is the kernel's "no
/// attributes for this one" (fuse_direntplus_link), so the choice is ours, chunk by chunk.
///
/// The first chunk of a listing carries them (what the kernel's READDIRPLUS_AUTO does, so a
/// small `ls -l` needs no lookups) unless the walker has been looking up directories only, many
/// in a row (`find` descending); later chunks carry them while the score says the walker stats
/// what it lists. A lookup that finds a non-directory raises the score by `lookupCredit`
/// (walkers that only descend look up directories alone); each entry given attributes lowers it
/// by one. So a `du` pays lookups for one directory in about thirty, and that keeps the score up,
/// while a `find` never gets there. The score is a hint: relaxed atomics, races only shift it.
final class ReaddirPlusHint: Sendable {
    private let score = Atomic<Int>(0)
    /// Directories looked up since the last lookup of anything else.
    private let descents = Atomic<Int>(0)

    /// What one lookup of a non-directory adds.
    static let lookupCredit = 32
    /// Later chunks carry attributes from this score up (two directories' worth of lookups).
    static let threshold = 64 * lookupCredit
    /// The most the score holds: about 30 000 entries given attributes before lookups are needed
    /// again to keep it up.
    static let cap = 1024 * lookupCredit

    /// Directory lookups in a row, with no other lookup between, from which a first chunk goes
    /// without attributes too.
    static let descentRun = 64

    /// A lookup found `name`; `isDirectory` is what it found.
    func noteLookup(isDirectory: Bool) {
        if isDirectory {
            let n = descents.load(ordering: .relaxed)
            if n < Self.descentRun { descents.store(n + 1, ordering: .relaxed) }
            return
        }
        descents.store(0, ordering: .relaxed)
        let now = score.load(ordering: .relaxed)
        if now < Self.cap { score.store(min(Self.cap, now + Self.lookupCredit), ordering: .relaxed) }
    }

    /// Whether the readdirplus chunk that starts at listing position `offset` gets attributes.
    func wantsAttributes(offset: Int) -> Bool {
        if score.load(ordering: .relaxed) >= Self.threshold { return true }
        return offset == 0 && descents.load(ordering: .relaxed) < Self.descentRun
    }

    /// `count` entries went out with attributes.
    func servedAttributes(_ count: Int) {
        guard count > 0 else { return }
        let now = score.load(ordering: .relaxed)
        score.store(max(0, now - count), ordering: .relaxed)
    }

    /// The current score: for tests.
    var current: Int { score.load(ordering: .relaxed) }
}
