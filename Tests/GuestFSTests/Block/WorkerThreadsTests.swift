import Foundation
@testable import GuestFSBlock
import Synchronization
import Testing

/// The pool behind the parallel read paths, used by several callers at once (FUSE serves
/// reads on several threads; each may decompress or decrypt in parallel, and copy-out nests
/// one `perform` in another).
@Suite struct WorkerThreadsTests {
    /// Interleaved callers: a finished job must not stay referenced by the queue while other
    /// callers' jobs are still in it (that tripped `withoutActuallyEscaping` and trapped the
    /// process, found when VMDK reads ran beside other tests).
    @Test func concurrentAndNestedPerformsAllComplete() throws {
        let total = Atomic<Int>(0)
        let callers = 6, rounds = 1500, width = 7
        let finished = DispatchSemaphore(value: 0)
        for _ in 0 ..< callers {
            Thread {
                for _ in 0 ..< rounds {
                    WorkerThreads.perform(iterations: width) { i in
                        if i == 0 {
                            WorkerThreads.perform(iterations: 3) { _ in total.add(1, ordering: .relaxed) }
                        } else {
                            total.add(1, ordering: .relaxed)
                        }
                    }
                }
                finished.signal()
            }.start()
        }
        for _ in 0 ..< callers {
            #expect(finished.wait(timeout: .now() + 60) == .success, "a caller still running after 60 s")
        }
        #expect(total.load(ordering: .relaxed) == callers * rounds * (width - 1 + 3))
    }
}
