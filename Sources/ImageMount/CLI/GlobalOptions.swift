import ArgumentParser
import Synchronization

/// The options every libguestfs tool takes, in every imagemount command: `-v`/`--verbose`,
/// `-x`/`--trace`, `-V`/`--version`, and `--long-options`/`--short-options` (what
/// libguestfs's bash completion calls). The three that print and exit are acted on by
/// `CommandLineCheck` before anything else, as getopt meets them, so they work without -a or a
/// mount directory; they are declared here so that help, man pages and that check know them.
struct GlobalOptions: ParsableArguments {
    @Flag(name: [.customShort("v"), .customLong("verbose")],
          help: "Say on stderr what is opened and mounted; for mount, log every FUSE request (as --debug).")
    var verbose = false

    @Flag(name: [.customShort("x"), .customLong("trace")],
          help: "As -v (libguestfs traces its API calls with -x); mount -x also stays in the foreground, as guestmount -x does.")
    var trace = false

    @Flag(name: [.customShort("V"), .customLong("version")], help: "Print the version and exit.")
    var version = false

    @Flag(name: .customLong("long-options"), help: "Print the long options of this command, one per line, and exit (for shell completion).")
    var longOptions = false

    @Flag(name: .customLong("short-options"), help: "Print the short options of this command, one per line, and exit (for shell completion).")
    var shortOptions = false

    /// Turns tracing on for the rest of the run (`Diagnostics.trace`).
    func apply() {
        if verbose || trace { Diagnostics.tracing = true }
    }
}

/// A value with the place it had on the command line, for options whose meaning depends on
/// the order they come in (`--format` and `--blocksize` apply to the `-a` options after them).
///
/// ArgumentParser keeps the order within one option's values but not across options; it does
/// call each option's transform as it meets the option, left to right, so the transform stamps
/// the value with a counter. Only the relative order matters, so one parse (or several, each
/// starting later) gives the right answer.
struct Positioned<Value: Sendable & Equatable>: Sendable, Equatable {
    let value: Value
    let position: Int

    init(_ value: Value) {
        self.value = value
        self.position = ArgumentOrder.counter.add(1, ordering: .relaxed).oldValue
    }
}

enum ArgumentOrder {
    static let counter = Atomic<Int>(0)
}
