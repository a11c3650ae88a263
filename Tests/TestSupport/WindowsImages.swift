import Foundation

/// A minimal registry hive, written by the tests themselves (hivex's lib/hivex-internal.h and
/// lib/handle.c give the layout): a 4 KiB "regf" header (version 1.3, root key offset, size of
/// the hbin area, XOR checksum of its first 0x1FC bytes) and one 4 KiB "hbin" page holding a
/// root "nk" key (flags 0x2C: hive entry, no delete, compressed name), the "sk" security record
/// hivex's writer copies to new keys (a self-relative security descriptor with no ACLs), and the
/// rest of the page as one free cell. hivexregedit --merge builds real hives on top of it.
public enum RegistryHive {
    public static func minimal() -> [UInt8] {
        var page = [UInt8](repeating: 0, count: 4096)
        func put32(_ buffer: inout [UInt8], _ offset: Int, _ value: UInt32) {
            for i in 0 ..< 4 { buffer[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
        }
        func put16(_ buffer: inout [UInt8], _ offset: Int, _ value: UInt16) {
            buffer[offset] = UInt8(truncatingIfNeeded: value); buffer[offset + 1] = UInt8(truncatingIfNeeded: value >> 8)
        }
        page.replaceSubrange(0 ..< 4, with: Array("hbin".utf8))
        put32(&page, 8, 4096)                     // page size; offset_first (4) is 0
        // nk at 0x20: 80 bytes of fields and the name "ROOT", padded to 88.
        let nk = 0x20, nkLength = 88, sk = nk + nkLength, skLength = 48
        put32(&page, nk, UInt32(bitPattern: Int32(-nkLength)))
        page.replaceSubrange(nk + 4 ..< nk + 6, with: Array("nk".utf8))
        put16(&page, nk + 6, 0x2C)
        for field in [0x14, 0x20, 0x24, 0x2C] { put32(&page, nk + field, 0xFFFF_FFFF) }   // parent, subkey lists, value list
        put32(&page, nk + 0x30, UInt32(sk - 0x20 + 0x20))                                   // sk (offsets count from 0x1000)
        put32(&page, nk + 0x34, 0xFFFF_FFFF)                                                 // class name
        put16(&page, nk + 0x4C, 4)
        page.replaceSubrange(nk + 0x50 ..< nk + 0x54, with: Array("ROOT".utf8))
        // sk: a circular list of one, referenced once, a 20-byte descriptor (revision 1, SE_SELF_RELATIVE).
        put32(&page, sk, UInt32(bitPattern: Int32(-skLength)))
        page.replaceSubrange(sk + 4 ..< sk + 6, with: Array("sk".utf8))
        put32(&page, sk + 8, UInt32(sk)); put32(&page, sk + 12, UInt32(sk)); put32(&page, sk + 16, 1); put32(&page, sk + 20, 20)
        page[sk + 24] = 1; put16(&page, sk + 26, 0x8004)
        put32(&page, sk + skLength, UInt32(4096 - (sk + skLength)))                             // the free rest
        var header = [UInt8](repeating: 0, count: 4096)
        header.replaceSubrange(0 ..< 4, with: Array("regf".utf8))
        for (offset, value) in [(4, 1), (8, 1), (0x14, 1), (0x18, 3), (0x20, 1), (0x24, 0x20), (0x28, 4096), (0x2C, 1)] as [(Int, UInt32)] {
            put32(&header, offset, value)
        }
        put32(&header, 0x1FC, checksum(header))
        return header + page
    }

    /// The header checksum hivex checks: the XOR of the first 127 little-endian words.
    public static func checksum(_ header: [UInt8]) -> UInt32 {
        stride(from: 0, to: 0x1FC, by: 4).reduce(UInt32(0)) { sum, i in
            sum ^ (UInt32(header[i]) | UInt32(header[i + 1]) << 8 | UInt32(header[i + 2]) << 16 | UInt32(header[i + 3]) << 24)
        }
    }

    /// `hive` with the header's root-key offset replaced and the checksum made right again, so
    /// that only the bogus offset is wrong.
    public static func withRootOffset(_ hive: [UInt8], _ offset: UInt32) -> [UInt8] {
        var copy = hive
        for i in 0 ..< 4 { copy[0x24 + i] = UInt8(truncatingIfNeeded: offset >> (8 * UInt32(i))) }
        let sum = checksum(copy)
        for i in 0 ..< 4 { copy[0x1FC + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt32(i))) }
        return copy
    }
}

/// Windows guests for the inspection tests, built with the real tools: registry hives made by
/// `hivexregedit --merge` on `RegistryHive.minimal()`, three NTFS volumes made by `mkntfs`
/// (a "System Reserved" one, C: with \Windows\System32\config\{SOFTWARE,SYSTEM}, cmd.exe,
/// win.ini and a user's Desktop, D: with a data file), filled through ntfs-3g mounts, placed in
/// an MBR disk (sfdisk, disk signature 0x12345678: C: is /dev/sda2 at 9 MiB, D: /dev/sda3 at
/// 57 MiB) and a GPT disk (sgdisk, fixed partition GUIDs), each converted to qcow2. The SYSTEM
/// hive's MountedDevices names C: and D: in the form each table needs (12-byte MBR blobs;
/// "DMIO:ID:" + GUID), Select\Current is 2 and ControlSet001 holds a stale computer name. A
/// third, whole-disk volume carries damaged hives (SOFTWARE cut short, SYSTEM with a root
/// offset pointing nowhere). Built once per run.
public final class WindowsImages: @unchecked Sendable {
    public let dir: TempDir
    public var mbr: String { dir.file("win-mbr.qcow2") }
    public var gpt: String { dir.file("win-gpt.qcow2") }
    public var damaged: String { dir.file("win-damaged.img") }
    /// The C: volumes and their hives as files, for the oracles (ntfscat, ntfs-3g, hivexget).
    public func cVolume(_ layout: String) -> String { dir.file("c-\(layout).img") }
    public func dVolume(_ layout: String) -> String { dir.file("d-\(layout).img") }
    public func hive(_ name: String, _ layout: String) -> String { dir.file("\(name)-\(layout)") }
    public static let diskSignature = "12345678"
    public static let cGUID = "6f1a3c2e-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
    public static let dGUID = "0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d"
    public static let hostname = "WIN-IMAGEMOUNT"
    /// The Uninstall subkey of the SOFTWARE hive's 7-Zip entry (an MSI-style product GUID).
    public static let app7zipKey = "{23170F69-40C1-2702-2301-000001000000}"
    public static let winIni = "; for 16-bit app support\r\n[fonts]\r\n[extensions]\r\n"

    public init() throws {
        dir = try TempDir("imagemount-windows")
        let minimal = RegistryHive.minimal()
        try Data(minimal).write(to: URL(fileURLWithPath: dir.file("min.hive")))
        try Shell.check("bash -c \(Shell.quote(Self.hives))  -- \(Shell.quote(dir.path))")
        // The damage, in plain sight: SOFTWARE cut to 6000 bytes (less than hivex's two
        // pages), SYSTEM's root key offset pointing far past the end (checksum kept right).
        let software = try Data(contentsOf: URL(fileURLWithPath: hive("SOFTWARE", "mbr")))
        try software.prefix(6000).write(to: URL(fileURLWithPath: hive("SOFTWARE", "damaged")))
        let system = [UInt8](try Data(contentsOf: URL(fileURLWithPath: hive("SYSTEM", "mbr"))))
        try Data(RegistryHive.withRootOffset(system, 0x7FFF_0000)).write(to: URL(fileURLWithPath: hive("SYSTEM", "damaged")))
        try Shell.check("bash -c \(Shell.quote(Self.volumes)) -- \(Shell.quote(dir.path))")
    }

    /// Makes SOFTWARE-{mbr,gpt} and SYSTEM-{mbr,gpt} in $1 from min.hive.
    static let hives = #"""
        set -eu
        cd "$1"
        sig=\#(diskSignature)
        le32() { printf '%s' "$1" | sed -E 's/(..)(..)(..)(..)/\4,\3,\2,\1/'; }
        le64() { printf '%016x' "$1" | sed -E 's/(..)(..)(..)(..)(..)(..)(..)(..)/\8,\7,\6,\5,\4,\3,\2,\1/'; }
        # A GUID's bytes as Windows stores them: Data1-3 little-endian, Data4 as written.
        guidblob() {
          g=$(printf '%s' "$1" | tr -d -)
          printf '%s,%s,%s,%s' "$(le32 ${g:0:8})" "$(printf '%s' ${g:8:4} | sed -E 's/(..)(..)/\2,\1/')" \
            "$(printf '%s' ${g:12:4} | sed -E 's/(..)(..)/\2,\1/')" "$(printf '%s' ${g:16:16} | sed -E 's/(..)/\1,/g; s/,$//')"
        }
        dmio="44,4d,49,4f,3a,49,44,3a"
        for layout in mbr gpt; do
          if [ $layout = gpt ]; then
            product="Windows Server 2019 Datacenter"; edition=ServerDatacenter; itype=Server; build=17763
            cmap="$dmio,$(guidblob \#(cGUID))"; dmap="$dmio,$(guidblob \#(dGUID))"
          else
            product="Windows 10 Pro"; edition=Professional; itype=Client; build=19045
            cmap="$(le32 $sig),$(le64 $((9 * 1048576)))"; dmap="$(le32 $sig),$(le64 $((57 * 1048576)))"
          fi
          cat > software-$layout.reg <<EOF
        Windows Registry Editor Version 5.00

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft]

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT]

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion]
        "ProductName"="$product"
        "EditionID"="$edition"
        "InstallationType"="$itype"
        "CurrentVersion"="6.3"
        "CurrentBuild"="$build"
        "CurrentBuildNumber"="$build"
        "CurrentMajorVersionNumber"=dword:0000000a
        "CurrentMinorVersionNumber"=dword:00000000

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows]

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion]

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall]

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\\#(app7zipKey)]
        "DisplayName"="7-Zip 23.01 (x64 edition)"
        "DisplayVersion"="23.01.00.0"
        "Publisher"="Igor Pavlov"
        "URLInfoAbout"="https://www.7-zip.org/"
        "Comments"="file archiver"
        "InstallLocation"="C:\\\\Program Files\\\\7-Zip\\\\"

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Notepad++]
        "DisplayName"="Notepad++ (64-bit x64)"
        "DisplayVersion"="8.6"
        "Publisher"=dword:00000001

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\KB5005463]
        "DisplayVersion"="1.0"

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node]

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft]

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows]

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion]

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall]

        [HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Legacy32]
        "DisplayName"="Legacy 32-bit Tool"
        "DisplayVersion"="2.5"
        "Publisher"="Old & Co <ltd>"
        EOF
          cat > system-$layout.reg <<EOF
        Windows Registry Editor Version 5.00

        [HKEY_LOCAL_MACHINE\\SYSTEM\\Select]
        "Current"=dword:00000002
        "Default"=dword:00000002
        "LastKnownGood"=dword:00000001

        [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001]

        [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control]

        [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\ComputerName]

        [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\ComputerName\\ComputerName]
        "ComputerName"="STALE-NAME"

        [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet002]

        [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet002\\Control]

        [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet002\\Control\\ComputerName]

        [HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet002\\Control\\ComputerName\\ComputerName]
        "ComputerName"="\#(hostname)"

        [HKEY_LOCAL_MACHINE\\SYSTEM\\MountedDevices]
        "\\\\DosDevices\\\\C:"=hex:$cmap
        "\\\\DosDevices\\\\D:"=hex:$dmap
        "\\\\DosDevices\\\\E:"=hex:5c,00,3f,00,3f,00,5c,00,53,00,43,00,53,00,49,00,23,00,43,00,64,00,52,00,6f,00,6d,00
        "\\\\??\\\\Volume{11111111-2222-3333-4444-555555555555}"=hex:$cmap
        EOF
          cp min.hive SOFTWARE-$layout
          cp min.hive SYSTEM-$layout
          hivexregedit --merge SOFTWARE-$layout --prefix 'HKEY_LOCAL_MACHINE\SOFTWARE' software-$layout.reg
          hivexregedit --merge SYSTEM-$layout --prefix 'HKEY_LOCAL_MACHINE\SYSTEM' system-$layout.reg
        done
        """#

    /// Makes the volumes and disks in $1 from the hives.
    static let volumes = #"""
        set -eu
        cd "$1"
        # Fills volume $1 by running $2 inside an ntfs-3g mount of it. ntfs-3g runs in the
        # foreground (no_detach) in the background, so `wait` sees it finish writing the volume
        # back after the unmount; its stdio is /dev/null so it holds none of the test's pipes.
        fill() {
          mkdir -p mnt
          ntfs-3g -o no_detach "$1" mnt </dev/null >/dev/null 2>&1 &
          pid=$!
          for i in $(seq 1 100); do mountpoint -q mnt && break; sleep 0.1; done
          (cd mnt && eval "$2") || { fusermount -u mnt; wait $pid; return 1; }
          fusermount -u mnt
          wait $pid
        }
        volume() { truncate -s "$2" "$1"; mkntfs -F -Q -q -L "$3" "$1" >/dev/null 2>&1; }
        for layout in mbr gpt damaged; do
          volume c-$layout.img 48M Windows
          fill c-$layout.img "
            mkdir -p Windows/System32/config 'Program Files/App' Users/x/Desktop/sub
            cp ../SOFTWARE-$layout Windows/System32/config/SOFTWARE
            cp ../SYSTEM-$layout Windows/System32/config/SYSTEM
            printf '; for 16-bit app support\r\n[fonts]\r\n[extensions]\r\n' > Windows/win.ini
            # cmd.exe: an MS-DOS header whose e_lfanew (0x3C) is 0x80, where 'PE\0\0' and
            # the machine 0x8664 (x86-64) follow.
            { printf 'MZ'; head -c 58 /dev/zero; printf '\200\000\000\000'; head -c 64 /dev/zero
              printf 'PE\000\000\144\206'; head -c 250 /dev/zero; } > Windows/System32/cmd.exe
            echo 'readme of an application' > 'Program Files/App/readme.txt'
            printf 'note from the desktop\r\n' > Users/x/Desktop/note.txt
            printf 'deeper\r\n' > Users/x/Desktop/sub/deep.txt
          "
        done
        for layout in mbr gpt; do
          volume d-$layout.img 16M Data
          fill d-$layout.img "mkdir Data && echo 'quarterly numbers' > Data/Report.txt"
          volume sys-$layout.img 8M 'System Reserved'
        done
        # MBR: signature 0x12345678; 1 MiB System Reserved, C: at 9 MiB (48 MiB), D: at 57 MiB.
        truncate -s 80M win-mbr.img
        printf 'label: dos\nlabel-id: 0x%s\nstart=2048, size=16384, type=7\nstart=18432, size=98304, type=7\nstart=116736, size=32768, type=7\n' \
          \#(diskSignature) | sfdisk -q --no-reread --no-tell-kernel win-mbr.img
        # GPT: the same layout, C: and D: with fixed unique partition GUIDs.
        truncate -s 80M win-gpt.img
        sgdisk -n 1:2048:18431 -t 1:0700 -c 1:'System Reserved' -n 2:18432:116735 -t 2:0700 -c 2:'Basic data partition' \
          -u 2:\#(cGUID) -n 3:116736:149503 -t 3:0700 -u 3:\#(dGUID) win-gpt.img >/dev/null
        for layout in mbr gpt; do
          dd if=sys-$layout.img of=win-$layout.img bs=1M seek=1 conv=notrunc,sparse status=none
          dd if=c-$layout.img of=win-$layout.img bs=1M seek=9 conv=notrunc,sparse status=none
          dd if=d-$layout.img of=win-$layout.img bs=1M seek=57 conv=notrunc,sparse status=none
          qemu-img convert -O qcow2 win-$layout.img win-$layout.qcow2
          rm win-$layout.img
        done
        cp c-damaged.img win-damaged.img
        rm -rf mnt
        """#
}
