import ArgumentParser

/// `--progress` / `--no-progress`, shared by the copying commands (copy-in, copy-out, tar-in,
/// tar-out). By default progress is shown only when standard error is a terminal.
struct ProgressOptions: ParsableArguments {
    @Flag(inversion: .prefixedNo,
          help: "Show bytes, files, rate and time left on standard error while copying (default: only when standard error is a terminal).")
    var progress: Bool?

    /// The reporter this run uses (the `off` one when progress is not shown).
    func reporter() -> ProgressReporter {
        ProgressReporter.enabled(progress) ? ProgressReporter(enabled: true) : .off
    }
}
