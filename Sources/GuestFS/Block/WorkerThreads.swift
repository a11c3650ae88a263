import Synchronization
import SystemHostIO
#if canImport(Glibc)
import Glibc
#endif

/// A small pool of threads of our own for the parallel parts of the read path (qcow2
/// decompression, LUKS sector decryption, copy-out's file copies), in place of libdispatch's
/// `concurrentPerform`.
///
/// Why not libdispatch: its worker-pool monitor opens `/proc/TID/stat` for every pool thread
/// and aborts the process when that fails ("registered worker exited prematurely"), so a
/// sandbox that closes /proc (Sandbox.swift) kills it. These threads need nothing from the
/// host once started: pthread_create, futexes, nothing else.
///
/// The caller runs iteration 0 itself and, while it waits, runs queued iterations too, so a
/// nested `perform` (a copy-out worker whose read decompresses in parallel) always makes
/// progress even when every pool thread is busy.
package final class WorkerThreads: @unchecked Sendable {
    /// The process's pool: at most this many threads are ever started.
    package static let shared = WorkerThreads(maxThreads: 8)

    private struct Job {
        let group: Group
        let index: Int
        let body: (Int) -> Void
    }

    /// One `perform` call: how many of its queued iterations have not finished. Changed under
    /// `mutex`; atomic so that a caller spinning without the lock sees it reach zero.
    private final class Group {
        let remaining: Atomic<Int>
        /// Whether the caller asked for polling (`perform(…, polling: true)`).
        let polls: Bool
        init(remaining: Int, polls: Bool) {
            self.remaining = Atomic(remaining)
            self.polls = polls
        }
    }

    /// The CPUs this process may run on (sched_getaffinity, a syscall the sandbox allows, so the
    /// count can be taken after it is entered; 1 when it fails: SystemHostIO's hostio_cpu_count). Compute-bound callers (the
    /// qcow2 decompression, the sector ciphers) cap their fan-out with it: more runnable
    /// threads than CPUs only share the same cores, and with contiguous quarters of a request
    /// the caller then waits for the slowest of four time-sliced threads (libdispatch's
    /// concurrentPerform, which this pool replaced, never ran more than one thread per CPU).
    package static let processorCount = Int(hostio_cpu_count())

    /// How long an idle worker, or a caller whose own part is done, keeps polling before it
    /// sleeps on the condition variable. A sequential read calls `perform` once per chunk, a
    /// few milliseconds apart; a thread that parks between them is woken through the futex,
    /// which on a virtual machine means an IPI to a halted vCPU. With the CPU cap above, this
    /// brought a compressed qcow2 read's wall time back to libdispatch's (bench/before-after.sh
    /// zlib: 1.10x before, level after); Only callers that ask poll (`perform(…, polling:)`).
    static let spinNanoseconds: UInt64 = 50_000
    /// Queued jobs not yet taken (changed under `mutex`, read by spinning workers without it).
    private let queuedJobs = Atomic<Int>(0)

    private let maxThreads: Int
    // Every field below is guarded by `mutex`.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Signalled when a job is queued.
    private let workAvailable: UnsafeMutablePointer<pthread_cond_t>
    /// Broadcast when a group's last job finishes.
    private let jobFinished: UnsafeMutablePointer<pthread_cond_t>
    /// Queued jobs from `head` on; a taken slot is set to nil at once, so a finished job's
    /// closure is not kept alive by the array while other callers' jobs are still queued.
    private var queue: [Job?] = []
    private var head = 0
    private var threads = 0
    private var idle = 0

    init(maxThreads: Int) {
        self.maxThreads = maxThreads
        mutex = .allocate(capacity: 1)
        workAvailable = .allocate(capacity: 1)
        jobFinished = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(workAvailable, nil)
        pthread_cond_init(jobFinished, nil)
    }

    /// Runs `body(0)` … `body(iterations - 1)`, in parallel where threads are free, and returns
    /// when all have run (the same contract as `DispatchQueue.concurrentPerform`). `polling`:
    /// the caller, and the workers after its jobs, poll for `spinNanoseconds` before parking
    /// (for short compute-bound calls made back to back, such as a sequential read's chunks;
    /// not for copy-out's long I/O-bound workers, where the polls would only burn CPU).
    package static func perform(iterations: Int, polling: Bool = false, _ body: (Int) -> Void) {
        guard iterations > 1 else {
            if iterations == 1 { body(0) }
            return
        }
        // `body` is queued for other threads but every queued job has finished, and dropped its
        // reference, before `run` returns, so it does not really escape.
        withoutActuallyEscaping(body) { shared.run(iterations, polling: polling, $0) }
    }

    private func run(_ iterations: Int, polling: Bool, _ body: @escaping (Int) -> Void) {
        let group = Group(remaining: iterations - 1, polls: polling)
        pthread_mutex_lock(mutex)
        for index in 1..<iterations { queue.append(Job(group: group, index: index, body: body)) }
        queuedJobs.add(iterations - 1, ordering: .releasing)
        let wanted = iterations - 1 - idle
        var started = 0
        while started < wanted, threads < maxThreads, startThread() { threads += 1; started += 1 }
        pthread_cond_broadcast(workAvailable)
        pthread_mutex_unlock(mutex)

        body(0)

        pthread_mutex_lock(mutex)
        while group.remaining.load(ordering: .acquiring) > 0 {
            if head < queue.count {
                runOneLocked()
            } else {
                // The rest is running on other threads: poll a moment (if asked), then sleep.
                if polling {
                    pthread_mutex_unlock(mutex)
                    Self.spin { group.remaining.load(ordering: .acquiring) == 0 }
                    pthread_mutex_lock(mutex)
                }
                if group.remaining.load(ordering: .acquiring) > 0, head >= queue.count {
                    pthread_cond_wait(jobFinished, mutex)
                }
            }
        }
        pthread_mutex_unlock(mutex)
    }

    /// Polls `done` for at most `spinNanoseconds` (clock_gettime is a vDSO call, no syscall).
    private static func spin(until done: () -> Bool) {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var polls = 0
        while !done() {
            polls += 1
            if polls & 63 == 0 {
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                let elapsed = (Int64(now.tv_sec) - Int64(start.tv_sec)) * 1_000_000_000 + (Int64(now.tv_nsec) - Int64(start.tv_nsec))
                if elapsed >= Int64(spinNanoseconds) { return }
            }
        }
    }

    /// Takes the oldest queued job and runs it with the lock dropped. Called and returns with
    /// `mutex` held. Returns whether the job's caller asked for polling.
    @discardableResult
    private func runOneLocked() -> Bool {
        var job: Job? = queue[head]
        queue[head] = nil
        head += 1
        queuedJobs.subtract(1, ordering: .relaxed)
        if head == queue.count { queue.removeAll(keepingCapacity: true); head = 0 }
        pthread_mutex_unlock(mutex)
        if let j = job { j.body(j.index) }
        let group = job?.group
        let polls = group?.polls ?? false
        // The job (and with it the caller's closure) is released before its group can reach
        // zero, so the caller's `withoutActuallyEscaping` sees no reference left.
        job = nil
        pthread_mutex_lock(mutex)
        if let group, group.remaining.subtract(1, ordering: .releasing).newValue == 0 {
            pthread_cond_broadcast(jobFinished)
        }
        return polls
    }

    private func workerLoop() {
        pthread_mutex_lock(mutex)
        var lastPolled = false
        while true {
            if head >= queue.count {
                // Counted idle while polling too, so a caller does not start a thread for work
                // this one is about to take.
                idle += 1
                if lastPolled {
                    pthread_mutex_unlock(mutex)
                    Self.spin { queuedJobs.load(ordering: .acquiring) > 0 }
                    pthread_mutex_lock(mutex)
                }
                while head >= queue.count { pthread_cond_wait(workAvailable, mutex) }
                idle -= 1
            }
            lastPolled = runOneLocked()
        }
    }

    /// Starts one detached worker; false when the system refuses a thread (the caller and the
    /// threads already running then do the work).
    private func startThread() -> Bool {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attributes, { context in
            // The pool lives for the whole process; the retain taken above is never given back.
            let pool = Unmanaged<WorkerThreads>.fromOpaque(context!).takeUnretainedValue()
            pool.workerLoop()
            return nil
        }, context)
        if rc != 0 { Unmanaged<WorkerThreads>.fromOpaque(context).release() }
        return rc == 0
    }
}
