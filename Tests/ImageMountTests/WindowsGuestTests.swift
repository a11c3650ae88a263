import Foundation
import Testing
import TestSupport

/// Windows guests (WindowsImages: hives by hivexregedit in mkntfs volumes on MBR and GPT disks):
/// `inspect` reports what hivexget reads from the same hives and drive letters that name the
/// partitions sfdisk and sgdisk made; `cat`, `ls` and `copy-out` take Windows paths and give
/// what ntfscat and ntfs-3g give; `-i` mounts C:; damaged hives cost their fields only.
@Suite(.serialized) struct WindowsGuestTests {
    static let images = Result { try WindowsImages() }

    static func hivexget(_ hive: String, _ key: String, _ value: String) throws -> String {
        try Shell.check("hivexget \(Shell.quote(hive)) \(Shell.quote(key)) \(Shell.quote(value))").trimmingCharacters(in: .newlines)
    }

    static func element(_ xml: String, _ name: String) -> String? {
        guard let open = xml.range(of: "<\(name)>"), let close = xml.range(of: "</\(name)>", range: open.upperBound ..< xml.endIndex) else { return nil }
        return String(xml[open.upperBound ..< close.lowerBound])
    }

    @Test(arguments: ["mbr", "gpt"]) func inspectReadsTheRegistry(layout: String) throws {
        let f = try Self.images.get()
        let image = layout == "mbr" ? f.mbr : f.gpt
        // IMAGEMOUNT_SANDBOX=required: the hives are read inside the sandbox, or the run fails.
        let result = try ImageMountBinary.run(["inspect", "-a", image], environment: ["IMAGEMOUNT_SANDBOX": "required"])
        let xml = result.text
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        let software = f.hive("SOFTWARE", layout), key = "\\Microsoft\\Windows NT\\CurrentVersion"
        #expect(Self.element(xml, "root") == "/dev/sda2")
        #expect(Self.element(xml, "name") == "windows")
        #expect(Self.element(xml, "distro") == "windows")
        #expect(Self.element(xml, "arch") == "x86_64")
        #expect(Self.element(xml, "product_name") == (try Self.hivexget(software, key, "ProductName")))
        #expect(Self.element(xml, "product_variant") == (try Self.hivexget(software, key, "InstallationType")))
        #expect(Self.element(xml, "build_id") == (try Self.hivexget(software, key, "CurrentBuildNumber")))
        #expect(Self.element(xml, "major_version") == "10")
        #expect(Self.element(xml, "minor_version") == "0")
        #expect(Self.element(xml, "windows_systemroot") == "/Windows")
        #expect(Self.element(xml, "windows_current_control_set") == "ControlSet002")
        #expect(Self.element(xml, "hostname") == WindowsImages.hostname)
        #expect(Self.element(xml, "osinfo") == (layout == "mbr" ? "win10" : "win2k19"))
        #expect(xml.contains("<mountpoint dev=\"/dev/sda2\">/</mountpoint>"))
        #expect(Self.element(xml, "package_format") == nil)
        // C: and D: are the partitions the tools made at 9 and 57 MiB (MBR: the disk signature
        // and byte offsets; GPT: the unique GUIDs sgdisk set). E: (a CD-ROM's device path) is
        // no fixed disk and is left out, as virt-inspector leaves it out.
        let raw = try TempDir("imagemount-win-raw")
        try Shell.check("qemu-img convert -O raw \(Shell.quote(image)) \(Shell.quote(raw.file("disk")))")
        if layout == "mbr" {
            let text = try Shell.check("sfdisk --json \(Shell.quote(raw.file("disk")))")
            let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            let table = json?["partitiontable"] as? [String: Any]
            #expect(table?["id"] as? String == "0x\(WindowsImages.diskSignature)", "\(text)")
            let starts = (table?["partitions"] as? [[String: Any]])?.compactMap { $0["start"] as? Int }
            #expect(starts == [2048, 18432, 116736], "\(text)")   // C: = 9 MiB = 18432 × 512, D: = 57 MiB
        } else {
            #expect(try Shell.check("sgdisk -i 2 \(Shell.quote(raw.file("disk")))").lowercased().contains(WindowsImages.cGUID))
            #expect(try Shell.check("sgdisk -i 3 \(Shell.quote(raw.file("disk")))").lowercased().contains(WindowsImages.dGUID))
        }
        #expect(xml.contains("""
                <drive_mappings>
                  <drive_mapping name="C">/dev/sda2</drive_mapping>
                  <drive_mapping name="D">/dev/sda3</drive_mapping>
                </drive_mappings>
            """), "\(xml)")
        let json = try ImageMountBinary.check(["inspect", "-a", image, "--json"])
        #expect(json.contains("\"drive_mappings\": [{\"name\": \"C\", \"device\": \"/dev/sda2\"}, {\"name\": \"D\", \"device\": \"/dev/sda3\"}]"), "\(json)")
        #expect(json.contains("\"edition_id\": \"\(try Self.hivexget(software, key, "EditionID"))\""), "\(json)")
    }

    @Test func catAndLsTakeWindowsPaths() throws {
        let f = try Self.images.get()
        let winIni = try Shell.check("ntfscat \(Shell.quote(f.cVolume("mbr"))) /Windows/win.ini")
        #expect(winIni == WindowsImages.winIni)
        for image in [f.mbr, f.gpt] {
            for path in ["C:\\Windows\\win.ini", "c:/windows/WIN.INI", "\\WINDOWS\\Win.Ini", "/windows/win.ini"] {
                let out = try ImageMountBinary.run(["cat", "-a", image, path])
                #expect(out.status == 0 && out.text == winIni, "\(path): \(out.stderr)")
            }
            // D: is another volume, opened on its own as virt-cat remounts it; the SYSTEM hive
            // that says so is read inside the sandbox (required: a missing layer fails the run).
            #expect(try ImageMountBinary.check(["cat", "-a", image, "D:\\data\\REPORT.TXT"], environment: ["IMAGEMOUNT_SANDBOX": "required"])
                    == (try Shell.check("ntfscat \(Shell.quote(f.dVolume("mbr"))) /Data/Report.txt")))
            #expect(try ImageMountBinary.check(["ls", "-a", image, "c:\\users\\X\\desktop"]) == "note.txt\nsub\n")
            let missing = try ImageMountBinary.run(["cat", "-a", image, "Z:\\x.txt", "C:\\Windows\\win.ini"])
            #expect(missing.status == 1 && missing.text == winIni, "\(missing.stderr)")
            #expect(missing.stderr.contains("drive 'z:' not found") && missing.stderr.split(separator: "\n").count == 1, "\(missing.stderr)")
        }
        // With -m nothing is translated: the path is the filesystem's own.
        let raw = try ImageMountBinary.run(["cat", "-a", f.mbr, "-m", "/dev/sda2", "C:\\Windows\\win.ini"])
        #expect(raw.status == 1 && raw.stderr.contains("path must start with a / character"), "\(raw.stderr)")
    }

    @Test func copyOutTakesAWindowsPath() throws {
        let f = try Self.images.get()
        let out = try TempDir("imagemount-win-out")
        try ImageMountBinary.check(["copy-out", "-a", f.gpt, "c:\\users\\x\\Desktop", "D:\\DATA", out.path])
        let oracle = try TempDir("imagemount-win-oracle")
        try NTFSImages.mountNtfs3g(f.cVolume("gpt"), at: oracle.path, options: "ro")
        defer { _ = try? Shell.run("fusermount -u \(Shell.quote(oracle.path)) || fusermount -u -z \(Shell.quote(oracle.path))") }
        let diff = try Shell.run("diff -r \(Shell.quote(oracle.file("Users/x/Desktop"))) \(Shell.quote(out.file("Desktop")))")
        #expect(diff.status == 0, "\(diff.text)")
        #expect(try String(contentsOfFile: out.file("Desktop/sub/deep.txt"), encoding: .utf8) == "deeper\r\n")
        #expect(try String(contentsOfFile: out.file("Data/Report.txt"), encoding: .utf8) == "quarterly numbers\n")
    }

    @Test func inspectorMountPutsCAtTheRoot() throws {
        let f = try Self.images.get()
        let m = try FuseMount(images: [f.mbr], arguments: ["-i", "--ro"])
        defer { m.close() }
        #expect(m.output.status == 0, "\(m.output.stderr)")
        #expect(try String(contentsOfFile: m.path + "/Windows/win.ini", encoding: .utf8) == WindowsImages.winIni)
        #expect(FileManager.default.fileExists(atPath: m.path + "/Users/x/Desktop/note.txt"))
    }

    /// The Uninstall keys (native, then WOW6432Node) as virt-inspector lists them: each subkey
    /// with a DisplayName, named by the subkey, its fields what hivexget reads from the same
    /// hive; a subkey without DisplayName (KB5005463) is left out, a value of the wrong type
    /// (Notepad++'s DWORD Publisher) leaves its field out; sorted by name; --no-applications
    /// leaves the list out.
    @Test func applicationsFromTheUninstallKeys() throws {
        let f = try Self.images.get()
        let software = f.hive("SOFTWARE", "mbr")
        let result = try ImageMountBinary.run(["inspect", "-a", f.mbr], environment: ["IMAGEMOUNT_SANDBOX": "required"])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result.stderr)")
        let native = "\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\", wow = "\\WOW6432Node" + native
        func get(_ key: String, _ value: String) throws -> String { try Self.hivexget(software, key, value) }
        let zip = native + WindowsImages.app7zipKey, notepad = native + "Notepad++", legacy = wow + "Legacy32"
        func xml(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        let expected = """
                <applications>
                  <application>
                    <name>Legacy32</name>
                    <display_name>\(xml(try get(legacy, "DisplayName")))</display_name>
                    <version>\(try get(legacy, "DisplayVersion"))</version>
                    <publisher>\(xml(try get(legacy, "Publisher")))</publisher>
                  </application>
                  <application>
                    <name>Notepad++</name>
                    <display_name>\(try get(notepad, "DisplayName"))</display_name>
                    <version>\(try get(notepad, "DisplayVersion"))</version>
                  </application>
                  <application>
                    <name>\(WindowsImages.app7zipKey)</name>
                    <display_name>\(try get(zip, "DisplayName"))</display_name>
                    <version>\(try get(zip, "DisplayVersion"))</version>
                    <install_path>\(try get(zip, "InstallLocation"))</install_path>
                    <publisher>\(try get(zip, "Publisher"))</publisher>
                    <url>\(try get(zip, "URLInfoAbout"))</url>
                    <description>\(try get(zip, "Comments"))</description>
                  </application>
                </applications>

            """
        #expect(result.text.contains(expected), "\(result.text)")
        #expect(try get(zip, "InstallLocation") == "C:\\Program Files\\7-Zip\\")
        #expect(try get(legacy, "Publisher") == "Old & Co <ltd>")
        let json = try ImageMountBinary.check(["inspect", "--json", "-a", f.mbr])
        #expect(json.contains("\"display_name\": \"Legacy 32-bit Tool\""), "\(json)")
        let without = try ImageMountBinary.check(["inspect", "--no-applications", "-a", f.mbr])
        #expect(without == result.text.replacingOccurrences(of: expected, with: ""))
        // A damaged SOFTWARE hive: no applications, and no second warning about it.
        let damaged = try ImageMountBinary.run(["inspect", "-a", f.damaged])
        #expect(damaged.text.contains("    <applications/>\n"), "\(damaged.text)")
    }

    @Test func damagedHivesCostOnlyTheirFields() throws {
        let f = try Self.images.get()
        let result = try ImageMountBinary.run(["inspect", "-a", f.damaged])
        #expect(result.status == 0, "\(result.stderr)")
        let xml = result.text
        #expect(Self.element(xml, "name") == "windows")
        #expect(Self.element(xml, "windows_systemroot") == "/Windows")
        #expect(Self.element(xml, "arch") == "x86_64")
        for missing in ["product_name", "hostname", "osinfo", "windows_current_control_set", "drive_mappings"] {
            #expect(Self.element(xml, missing) == nil, "\(missing) in \(xml)")
        }
        // One line per hive, naming it.
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 2, "\(result.stderr)")
        #expect(lines.contains { $0.contains("System32/config/SOFTWARE") && $0.contains("too small") }, "\(result.stderr)")
        #expect(lines.contains { $0.contains("System32/config/SYSTEM") && $0.contains("not a valid registry hive") }, "\(result.stderr)")
        // The files are still there: C: is the root inspection found.
        #expect(try ImageMountBinary.check(["cat", "-a", f.damaged, "C:\\Windows\\win.ini"]) == WindowsImages.winIni)
    }
}
