import Foundation

/// Small installed-looking guests for inspection tests: a root tree with /etc/os-release,
/// /etc/hostname, /etc/fstab and a real ELF binary in /bin, on several disk layouts.
public enum GuestFixtures {
    public struct Guest: Sendable {
        public let image: String
        /// What the test put in, to check inspection against.
        public let hostname: String
        public let bootUUID: String
    }

    /// Writes a root tree into `dir` and returns it.
    public static func rootTree(_ dir: String, hostname: String, osRelease: String, fstab: String, usrMerge: Bool = false) throws -> String {
        let q = Shell.quote(dir)
        try Shell.check("mkdir -p \(q)/etc \(q)/boot \(q)/data \(q)/usr/bin \(q)/var/log")
        if usrMerge {
            try Shell.check("cp /bin/ls \(q)/usr/bin/ls && ln -s usr/bin \(q)/bin")
        } else {
            try Shell.check("mkdir -p \(q)/bin && cp /bin/ls \(q)/bin/ls")
        }
        try Data((hostname + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/etc/hostname"))
        try Data(osRelease.utf8).write(to: URL(fileURLWithPath: dir + "/etc/os-release"))
        try Data(fstab.utf8).write(to: URL(fileURLWithPath: dir + "/etc/fstab"))
        try Data("127.0.0.1 localhost\n".utf8).write(to: URL(fileURLWithPath: dir + "/etc/hosts"))
        return dir
    }

    public static let bootUUID = "0b007b00-7b00-4b00-8b00-0000000b0070"
    static let fedora = "NAME=Fedora\nID=fedora\nVERSION_ID=39\nPRETTY_NAME=\"Fedora Linux 39 (Server Edition)\"\n"

    /// GPT: sda1 root, sda2 /boot (fstab by UUID=), sda3 /data (fstab by LABEL=DATA).
    public static func gptWithBootAndData() throws -> Guest {
        try cached("gpt-boot-data") { dir, image in
            let root = try rootTree(dir + "/root", hostname: "gpt-guest", osRelease: fedora, fstab: """
                # /etc/fstab
                UUID=\(bootUUID) /boot ext4 defaults 1 2
                LABEL=DATA /data ext4 defaults 1 2
                /dev/mapper/vg-swap none swap defaults 0 0
                proc /proc proc defaults 0 0
                /dev/vda1 / ext4 defaults 1 1

                """)
            let boot = try small(dir + "/boot", file: "vmlinuz", content: "kernel\n")
            let data = try small(dir + "/data", file: "payload", content: "data partition\n")
            try Shell.check("truncate -s 200M \(Shell.quote(image)) && sgdisk -o -n 1:2048:+100M -n 2:0:+40M -n 3:0:+40M \(Shell.quote(image)) >/dev/null")
            try DiskFixtures.makeFS(image, (2048 * 512, 100 << 20), type: "ext4", source: root)
            try DiskFixtures.makeFS(image, ((2048 + 204_800) * 512, 40 << 20), type: "ext4", source: boot, extra: "-U \(bootUUID)")
            try DiskFixtures.makeFS(image, ((2048 + 286_720) * 512, 40 << 20), type: "ext4", source: data, extra: "-L DATA")
            return "gpt-guest"
        }
    }

    /// MBR: sda1 /boot, root on the logical partition sda5 (fstab names it /dev/sda5), usr-merged /bin.
    public static func mbrWithLogicalRoot() throws -> Guest {
        try cached("mbr-logical-root") { dir, image in
            let root = try rootTree(dir + "/root", hostname: "mbr-guest",
                                    osRelease: "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
                                    fstab: "/dev/sda5 / ext4 errors=remount-ro 0 1\n/dev/sda1 /boot ext2 defaults 0 2\n/dev/sr0 /media/cdrom0 udf,iso9660 user,noauto 0 0\n",
                                    usrMerge: true)
            let boot = try small(dir + "/boot", file: "grub.cfg", content: "menuentry\n")
            try Shell.check("truncate -s 160M \(Shell.quote(image)) && printf '%s\\n' 'label: dos' 'start=2048, size=40960, type=83' " +
                            "'start=43008, type=5' 'start=45056, size=204800, type=83' | sfdisk -q \(Shell.quote(image))")
            try DiskFixtures.makeFS(image, (2048 * 512, 40_960 * 512), type: "ext2", source: boot)
            try DiskFixtures.makeFS(image, (45_056 * 512, 204_800 * 512), type: "ext4", source: root)
            return "mbr-guest"
        }
    }

    /// Two disks, each with a whole-disk root: two operating systems.
    public static func twoRoots() throws -> [String] {
        var images: [String] = []
        for (i, name) in ["first-os", "second-os"].enumerated() {
            let g = try cached("two-roots-\(i)") { dir, image in
                let root = try rootTree(dir + "/root", hostname: name, osRelease: fedora, fstab: "/dev/sda / ext4 defaults 0 1\n")
                try Shell.check("truncate -s 40M \(Shell.quote(image))")
                try DiskFixtures.makeFS(image, (0, 40 << 20), type: "ext4", source: root)
                return name
            }
            images.append(g.image)
        }
        return images
    }

    static func small(_ dir: String, file: String, content: String) throws -> String {
        try Shell.check("mkdir -p \(Shell.quote(dir))")
        try Data(content.utf8).write(to: URL(fileURLWithPath: dir + "/" + file))
        return dir
    }

    private static let built = Locked<[String: Guest]>([:])

    private static func cached(_ name: String, _ build: (String, String) throws -> String) throws -> Guest {
        try built.withValue { cache in
            if let g = cache[name] { return g }
            let dir = Fixtures.scratch.file("guest-" + name)
            try Shell.check("mkdir -p \(Shell.quote(dir))")
            let image = Fixtures.scratch.file("guest-" + name + ".img")
            let hostname = try build(dir, image)
            let g = Guest(image: image, hostname: hostname, bootUUID: bootUUID)
            cache[name] = g
            return g
        }
    }
}
