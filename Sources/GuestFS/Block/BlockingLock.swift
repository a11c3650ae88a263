#if canImport(Glibc)
import Glibc
#endif

/// A lock whose waiters spin only briefly before they sleep: a glibc adaptive pthread mutex
/// (PTHREAD_MUTEX_ADAPTIVE_NP, which spins a bounded number of times, fewer as it learns that
/// spinning does not pay, and only while the holder runs on another CPU).
///
/// For a lock held across long calls into a C library that is not thread-safe (libext2fs),
/// taken by several worker threads at once. Swift's `Mutex` spins in user space for longer
/// (Synchronization's `_MutexHandle._lockSlow`); with copy-out's four workers queued on the
/// libext2fs lock that spinning was 10–13% of copy-out's CPU on this 2-core machine (perf).
/// A default mutex, whose waiters sleep at once, went too far the other way: with one worker
/// per CPU, the lock is often released a moment after a waiter arrives, and sleeping cost two
/// context switches each time (copy-out of 4 000 files: 199-259 a run, 123-129 ms of CPU,
/// against 54-77 and 118-119 ms adaptive; be8e785's spinning Mutex: 41-48, 110-121 ms).
/// Short critical sections keep `Mutex`.
package final class BlockingLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP))
        pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` holding the lock.
    package func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
