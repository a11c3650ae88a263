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
                    WorkerThreads.perform(iterations: width, polling: Bool.random()) { i in
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

    /// The CPU count the compute-bound fan-outs cap themselves with is the affinity mask's, as
    /// `nproc` counts it, and never more than the online CPUs.
    @Test func processorCountFollowsTheAffinityMask() throws {
        func nproc(_ arguments: [String]) throws -> Int {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: arguments[0])
            process.arguments = Array(arguments.dropFirst())
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            process.waitUntilExit()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        #expect(WorkerThreads.processorCount == (try nproc(["/usr/bin/nproc"])))
        #expect(WorkerThreads.processorCount >= 1)
        #expect(WorkerThreads.processorCount <= Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// Callers that finish their own part first wait (polling, then sleeping) until the rest is
    /// done: every iteration has run when perform returns, across many short rounds with idle
    /// gaps longer than the polling window.
    @Test func performWaitsForSlowIterationsAfterPolling() throws {
        let done = Atomic<Int>(0)
        for round in 0 ..< 20 {
            WorkerThreads.perform(iterations: 3, polling: round % 2 == 0) { i in
                if i != 0 { usleep(UInt32(200 + round * 10)) }
                done.add(1, ordering: .relaxed)
            }
            #expect(done.load(ordering: .relaxed) == (round + 1) * 3)
            usleep(300)
        }
    }
}
