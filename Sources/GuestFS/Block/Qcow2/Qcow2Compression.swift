import Synchronization
import SystemZlib
import SystemZstd
#if canImport(Glibc)
import Glibc
#endif

/// Decompression of compressed clusters, and the bounded pool it runs on (QEMU's block/qcow2-threads.c).
///
/// The only file that imports zlib and zstd. The rest of the engine asks for `decompress` and
/// `forEachInParallel`, nothing else.
enum Qcow2Compression {
    /// Threads decompressing for one read: QEMU's QCOW2_MAX_THREADS, capped by the CPUs the
    /// process may use (forEachInParallel).
    static let poolWidth = 4
    /// deflate window bits for "zlib" clusters: negative means raw deflate without the zlib header,
    /// and 12 is the window QEMU compresses with (qcow2 spec, "Compressed Clusters Descriptor";
    /// QEMU's qcow2_zlib_decompress).
    static let deflateWindowBits: Int32 = -12

    /// Decompresses one cluster: `output` is filled entirely or this throws.
    ///
    /// `input` may be longer than the stream (the descriptor's sector count is an upper bound, and
    /// the last sector can hold the start of another cluster): decoding stops once `output` is full.
    static func decompress(_ type: Qcow2CompressionType, _ input: UnsafeRawBufferPointer,
                           into output: UnsafeMutableRawBufferPointer) throws(Qcow2FormatError) {
        switch type {
        case .zlib: try inflateRaw(input, into: output)
        case .zstd: try decompressZstd(input, into: output)
        }
    }

    /// Raw deflate (zlib clusters have no zlib header).
    private static func inflateRaw(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(Qcow2FormatError) {
        guard let inBase = input.baseAddress, let outBase = output.baseAddress else {
            throw .init("empty compressed cluster")
        }
        var stream = z_stream()
        guard inflateInit2_(&stream, deflateWindowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .init("cannot start deflate decoder")
        }
        defer { inflateEnd(&stream) }
        stream.next_in = UnsafeMutablePointer(mutating: inBase.assumingMemoryBound(to: Bytef.self))
        stream.avail_in = uInt(input.count)
        stream.next_out = outBase.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(output.count)
        let rc = inflate(&stream, Z_FINISH)
        // As QEMU: a full cluster is success whether or not the stream's end marker was reached.
        guard (rc == Z_STREAM_END || rc == Z_BUF_ERROR || rc == Z_OK), stream.avail_out == 0 else {
            let what = rc == Z_DATA_ERROR ? "invalid deflate data" : "deflate stream ends early (zlib status \(rc))"
            throw .init("\(what): \(output.count - Int(stream.avail_out)) of \(output.count) bytes produced")
        }
    }

    /// A zstd decoder context, reused across clusters (creating one costs more than a small cluster).
    private struct DecoderContext: @unchecked Sendable { let pointer: OpaquePointer }
    private static let idleContexts = Mutex<[DecoderContext]>([])

    /// zstd: one or more frames, no length prefix; stop when the cluster is full.
    private static func decompressZstd(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws(Qcow2FormatError) {
        let context: DecoderContext
        if let idle = idleContexts.withLock({ $0.popLast() }) {
            context = idle
        } else if let fresh = ZSTD_createDCtx() {
            context = DecoderContext(pointer: fresh)
        } else {
            throw .init("cannot allocate a zstd decoder")
        }
        var healthy = true
        defer {
            if healthy, ZSTD_isError(ZSTD_DCtx_reset(context.pointer, ZSTD_reset_session_only)) == 0 {
                idleContexts.withLock { if $0.count < poolWidth { $0.append(context) } else { ZSTD_freeDCtx(context.pointer) } }
            } else {
                ZSTD_freeDCtx(context.pointer)
            }
        }
        var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var outBuf = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
        while outBuf.pos < outBuf.size {
            let before = (inBuf.pos, outBuf.pos)
            let rc = ZSTD_decompressStream(context.pointer, &outBuf, &inBuf)
            if ZSTD_isError(rc) != 0 {
                healthy = false
                throw .init("invalid zstd data: \(String(cString: ZSTD_getErrorName(rc)))")
            }
            if outBuf.pos < outBuf.size, inBuf.pos == inBuf.size || before == (inBuf.pos, outBuf.pos) {
                healthy = false
                throw .init("zstd stream ends early: \(outBuf.pos) of \(outBuf.size) bytes produced")
            }
        }
    }

    /// Runs `body(0..<count)` on at most `poolWidth` threads; each thread takes one contiguous block
    /// of indices, so neighbouring work (adjacent compressed clusters) stays on one thread.
    static func forEachInParallel(_ count: Int, _ body: (Range<Int>) -> Void) {
        // No more threads than CPUs: decompression is pure computation (WorkerThreads.processorCount).
        let width = min(poolWidth, count, WorkerThreads.processorCount)
        if width <= 1 { body(0..<count); return }
        withoutActuallyEscaping(body) { body in
            // WorkerThreads.perform returns only after every iteration has run, so `body` (and the
            // buffers it writes, each worker its own disjoint part) outlives all of its uses.
            let shared = UncheckedSendable(body)
            WorkerThreads.perform(iterations: width, polling: true) { worker in
                shared.value((count * worker / width)..<(count * (worker + 1) / width))
            }
        }
    }
}

/// Carries a value into a `@Sendable` closure that is known to finish before the value goes away.
private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
