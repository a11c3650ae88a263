import ArgumentParser

/// qemu-img's `--output=human|json` (qemu-img.c `OFORMAT_HUMAN`/`OFORMAT_JSON`), accepted by
/// `info` and `check` beside their older `--json` flag.
enum QemuImgOutput: String, ExpressibleByArgument, CaseIterable {
    case human, json

    /// The format asked for by `--output` and `--json` together: they must not disagree.
    static func resolve(output: QemuImgOutput?, json: Bool) throws -> QemuImgOutput {
        switch (output, json) {
        case (.human, true): throw ValidationError("--json and --output=human cannot be used together")
        case (let output?, _): return output
        case (nil, true): return .json
        case (nil, false): return .human
        }
    }
}
