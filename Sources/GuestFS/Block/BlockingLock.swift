#if canImport(Glibc)
import Glibc
#endif

/// A lock whose waiters sleep at once: a default (non-adaptive) glibc pthread mutex.
///
/// For a lock held across long calls into a C library that is not thread-safe (libext2fs),
/// taken by several worker threads at once. Swift's `Mutex` spins in user space before it
/// sleeps (Synchronization's `_MutexHandle._lockSlow`); with copy-out's four workers queued on
/// the libext2fs lock that spinning was 10–13% of copy-out's CPU on this 2-core machine
/// (perf), time the holder could have run in. Short critical sections keep `Mutex`.
package final class BlockingLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
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
