import ArgumentParser
import GuestFSBlock

/// How `rbd:` images reach their Ceph cluster, spelled as the rbd tool spells it (rbd(8):
/// `-c/--conf`, `--id`, `-k/--keyring`): the drive options of every command that takes `-a`
/// (`ImageOptions`) and of `info`. Options in the image's own name (`rbd:POOL/IMAGE:id=…`) win.
struct RBDOptions: ParsableArguments {
    @Option(name: .customLong("rbd-conf"),
            help: ArgumentHelp("Ceph configuration file for rbd: images (as rbd -c/--conf); by default librados's search path: $CEPH_CONF, /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf.",
                               valueName: "file"))
    var rbdConf: String?

    @Option(name: .customLong("rbd-id"),
            help: ArgumentHelp("Ceph client id for rbd: images (as rbd --id): 'admin' connects as client.admin, the default.",
                               valueName: "name"))
    var rbdID: String?

    @Option(name: .customLong("keyring"),
            help: ArgumentHelp("Ceph keyring for rbd: images (as rbd -k/--keyring); by default the keyring the configuration names, else Ceph's default places such as /etc/ceph/ceph.client.ID.keyring.",
                               valueName: "file"))
    var keyring: String?

    func validate() throws {
        for (option, value) in [("--rbd-conf", rbdConf), ("--rbd-id", rbdID), ("--keyring", keyring)] {
            if let value, value.isEmpty || value.utf8.count > 4096 || value.utf8.contains(where: { $0 < 0x20 }) {
                throw ValidationError("\(option): expected a non-empty name of at most 4096 bytes, without control characters")
            }
        }
    }

    /// What the drives are opened with (`DriveSpec.rbdClient`, `ImageOpenOptions.rbdClient`).
    var client: RBDClientOptions {
        RBDClientOptions(configurationFile: rbdConf, id: rbdID, keyring: keyring)
    }
}
