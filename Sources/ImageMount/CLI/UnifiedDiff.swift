/// The hunks `diff -u OLD NEW | tail -n +3` prints (virt-diff shows a changed file that way,
/// guestfs-tools diff/diff.c `diff`): GNU diff's unified format without its two header lines.
///
/// Three lines of context; two changes closer than 2 × 3 + 1 unchanged lines share a hunk
/// (GNU diff util.c `find_hunk`); a range is written `START,COUNT`, `START` alone for one line,
/// `START-1,0` for none (`print_unidiff_number_range`); inside a change all old lines come
/// before the new ones; a last line without a newline is followed by
/// "\ No newline at end of file". Binary files (a NUL in their first 32 KiB, as GNU diff's
/// guess) give nothing: GNU's one "Binary files ... differ" line is what `tail -n +3` drops.
/// The edit script is Myers' O(ND) shortest one (GNU diff finds the same length, and for the
/// usual changes the same script), after the common head and tail are set aside.
enum UnifiedDiff {
    static let context = 3
    /// The most differing lines searched for a shortest script; past it the middle is shown
    /// as all old lines removed and all new ones added (still a correct diff, bounded work).
    static let maxEdits = 4000

    enum Op { case same(Int, Int), delete(Int), insert(Int) }

    static func isBinary(_ bytes: [UInt8]) -> Bool { bytes.prefix(32 << 10).contains(0) }

    /// Lines with their newline (the last one may have none).
    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var start = 0
        for (i, b) in bytes.enumerated() where b == 0x0A {
            out.append(bytes[start...i])
            start = i + 1
        }
        if start < bytes.count { out.append(bytes[start...]) }
        return out
    }

    static func write(old: [UInt8], new: [UInt8], into out: inout OutputBuffer) {
        if old == new || isBinary(old) || isBinary(new) { return }
        let a = lines(old), b = lines(new)
        // Lines as small integers, so the search compares numbers.
        var ids: [ArraySlice<UInt8>: Int] = [:]
        func number(_ lines: [ArraySlice<UInt8>]) -> [Int] {
            lines.map { line in
                if let id = ids[line] { return id }
                let id = ids.count
                ids[line] = id
                return id
            }
        }
        let x = number(a), y = number(b)
        let ops = script(x, y)
        for hunk in hunks(ops) { render(hunk, a, b, into: &out) }
    }

    /// The edit script: the common head, Myers' shortest script for the middle, the common tail.
    static func script(_ a: [Int], _ b: [Int]) -> [Op] {
        var head = 0
        while head < a.count && head < b.count && a[head] == b[head] { head += 1 }
        var tail = 0
        while tail < a.count - head && tail < b.count - head && a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
        var ops: [Op] = (0..<head).map { .same($0, $0) }
        let midA = Array(a[head..<(a.count - tail)]), midB = Array(b[head..<(b.count - tail)])
        if let middle = myers(midA, midB) {
            for op in middle {
                switch op {
                case .same(let i, let j): ops.append(.same(i + head, j + head))
                case .delete(let i): ops.append(.delete(i + head))
                case .insert(let j): ops.append(.insert(j + head))
                }
            }
        } else {
            ops += (0..<midA.count).map { .delete($0 + head) }
            ops += (0..<midB.count).map { .insert($0 + head) }
        }
        ops += (0..<tail).map { .same(a.count - tail + $0, b.count - tail + $0) }
        return ops
    }

    /// Myers, "An O(ND) Difference Algorithm and Its Variations" (1986), the greedy forward
    /// search keeping each round's furthest points for the walk back; nil past `maxEdits`.
    static func myers(_ a: [Int], _ b: [Int]) -> [Op]? {
        let n = a.count, m = b.count
        if n == 0 { return (0..<m).map { .insert($0) } }
        if m == 0 { return (0..<n).map { .delete($0) } }
        var trace: [[Int]] = []
        var found = -1
        search: for d in 0...min(n + m, maxEdits) {
            var v = [Int](repeating: 0, count: 2 * d + 1)
            for k in stride(from: -d, through: d, by: 2) {
                var x: Int
                if d == 0 {
                    x = 0
                } else {
                    let prev = trace[d - 1]
                    // prev[k ± 1] at index (k ± 1) + (d - 1).
                    if k == -d || (k != d && prev[k - 1 + d - 1] < prev[k + 1 + d - 1]) {
                        x = prev[k + 1 + d - 1]
                    } else {
                        x = prev[k - 1 + d - 1] + 1
                    }
                }
                var y = x - k
                while x < n && y < m && a[x] == b[y] { x += 1; y += 1 }
                v[k + d] = x
                if x >= n && y >= m {
                    trace.append(v)
                    found = d
                    break search
                }
            }
            trace.append(v)
        }
        guard found >= 0 else { return nil }
        var ops: [Op] = []
        var x = n, y = m
        for d in stride(from: found, to: 0, by: -1) {
            let k = x - y
            let prev = trace[d - 1]
            let down = k == -d || (k != d && prev[k - 1 + d - 1] < prev[k + 1 + d - 1])
            let prevK = down ? k + 1 : k - 1
            let prevX = prev[prevK + d - 1]
            let prevY = prevX - prevK
            let startX = down ? prevX : prevX + 1
            let startY = down ? prevY + 1 : prevY
            while x > startX && y > startY { x -= 1; y -= 1; ops.append(.same(x, y)) }
            if down { ops.append(.insert(prevY)) } else { ops.append(.delete(prevX)) }
            x = prevX
            y = prevY
        }
        while x > 0 && y > 0 { x -= 1; y -= 1; ops.append(.same(x, y)) }
        return ops.reversed()
    }

    /// The script cut into hunks: each change with up to `context` unchanged lines around it,
    /// changes nearer than 2 × context + 1 unchanged lines kept in one hunk.
    static func hunks(_ ops: [Op]) -> [ArraySlice<Op>] {
        var changed: [Int] = []
        for (i, op) in ops.enumerated() { if case .same = op {} else { changed.append(i) } }
        guard let firstChange = changed.first else { return [] }
        var result: [ArraySlice<Op>] = []
        var start = max(0, firstChange - context)
        var last = firstChange
        for c in changed.dropFirst() {
            if c - last - 1 >= 2 * context + 1 {
                result.append(ops[start...min(ops.count - 1, last + context)])
                start = c - context
            }
            last = c
        }
        result.append(ops[start...min(ops.count - 1, last + context)])
        return result
    }

    static func render(_ hunk: ArraySlice<Op>, _ a: [ArraySlice<UInt8>], _ b: [ArraySlice<UInt8>], into out: inout OutputBuffer) {
        // Where the hunk starts in each file (0-based), and how many lines of each it covers.
        var oldStart: Int?, newStart: Int?
        var oldCount = 0, newCount = 0
        var oldNext = 0, newNext = 0
        for op in hunk {
            switch op {
            case .same(let i, let j):
                if oldStart == nil { oldStart = i }
                if newStart == nil { newStart = j }
                oldCount += 1; newCount += 1; oldNext = i + 1; newNext = j + 1
            case .delete(let i):
                if oldStart == nil { oldStart = i }
                oldCount += 1; oldNext = i + 1
            case .insert(let j):
                if newStart == nil { newStart = j }
                newCount += 1; newNext = j + 1
            }
        }
        // A side with no line in the hunk starts where the other side's position puts it.
        let o = oldStart ?? oldNext, n = newStart ?? newNext
        out.append("@@ -\(range(o, oldCount)) +\(range(n, newCount)) @@\n")
        var deleted: [ArraySlice<UInt8>] = [], inserted: [ArraySlice<UInt8>] = []
        func flushChange() {
            for line in deleted { emit("-", line, into: &out) }
            for line in inserted { emit("+", line, into: &out) }
            deleted.removeAll()
            inserted.removeAll()
        }
        for op in hunk {
            switch op {
            case .same(let i, _):
                flushChange()
                emit(" ", a[i], into: &out)
            case .delete(let i): deleted.append(a[i])
            case .insert(let j): inserted.append(b[j])
            }
        }
        flushChange()
    }

    /// GNU's numbering: 1-based first line and count; one line is its number alone; an empty
    /// range is the line before it and 0.
    static func range(_ start: Int, _ count: Int) -> String {
        switch count {
        case 0: "\(start),0"
        case 1: "\(start + 1)"
        default: "\(start + 1),\(count)"
        }
    }

    static func emit(_ prefix: String, _ line: ArraySlice<UInt8>, into out: inout OutputBuffer) {
        out.append(prefix)
        out.append(Array(line))
        if line.last != 0x0A { out.append("\n\\ No newline at end of file\n") }
    }
}
