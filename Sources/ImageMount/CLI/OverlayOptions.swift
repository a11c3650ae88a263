import ArgumentParser

/// `--overlay FILE`, shared by the writing commands (edit, copy-in, tar-in) and `mount --rw`:
/// the writes go to a new qcow2 file over each drive, and the drives themselves are opened
/// read-only (never written). `imagemount commit FILE` writes an overlay back.
struct OverlayOptions: ParsableArguments {
    @Option(name: .customLong("overlay"),
            help: ArgumentHelp("Write to a new qcow2 overlay FILE instead of the image: FILE (which must not exist) gets the image as its backing file (absolute path and format recorded), the image is opened read-only and never written. Throw FILE away to forget the writes, or keep them with 'imagemount commit FILE'. Give one --overlay per -a, in the same order.",
                               valueName: "file"))
    var overlays: [String] = []
}
