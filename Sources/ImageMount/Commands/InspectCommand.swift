import ArgumentParser
import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS
import GuestFSInspect

/// `imagemount inspect`: like virt-inspector, what operating systems the disks hold.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Report the operating systems installed on disk images.",
        discussion: """
            Like virt-inspector: finds each Linux root filesystem (one with /etc, /bin and \
            /etc/fstab or /etc/hosts) and reports its distribution, version, product name, \
            hostname, architecture (from the ELF header of a system binary), package format and \
            manager, and the mountpoints its /etc/fstab gives. A Windows root (a \\Windows \
            directory, in any case, holding System32\\config) is described from its registry, \
            read with hivex: product name, variant (InstallationType), version and build from \
            the SOFTWARE hive's CurrentVersion key, the control set, hostname and drive letters \
            (MountedDevices, matched to the MBR or GPT partitions) from the SYSTEM hive, the \
            architecture from System32\\cmd.exe's PE header. The default output is XML shaped \
            like virt-inspector's <operatingsystems> document; --json gives the same content as \
            JSON. Each OS lists its installed applications, as virt-inspector does: from the \
            dpkg, apk or pacman database, a Windows guest's Uninstall registry keys, or an RPM \
            guest's rpmdb (SQLite, or Berkeley DB through librpm's read-only backend, read by \
            librpm from a copy in a private directory under $TMPDIR that is removed before \
            inspect exits); --no-applications leaves them out. The distribution's logo, where \
            virt-inspector finds one, is the <icon> element (base64 PNG; Linux guests only); \
            --no-icon leaves it out. --xpath QUERY prints what the \
            XPath query selects from the XML instead, as virt-inspector --xpath does (which reads the XML from its standard input; here the \
            query runs on the inspection of the -a/-d drives given). \
            Example: imagemount inspect -a vm.qcow2 --xpath '//operatingsystem/hostname/text()'
            """
    )

    @OptionGroup var image: ImageOptions

    @Flag(name: .customLong("xml"), help: "Print XML like virt-inspector (the default).")
    var xml = false

    @Flag(name: .customLong("json"), help: "Print JSON with the same content as the XML.")
    var json = false

    @Option(name: .customLong("xpath"),
            help: ArgumentHelp("Run this XPath query over the XML output and print its result instead, as virt-inspector --xpath prints it: each node found as XML, a string or number as text.", valueName: "query"))
    var xpath: String?

    @Flag(name: .customLong("no-applications"), help: "Leave out the list of installed applications (read from the dpkg, apk, pacman and RPM databases, and a Windows guest's registry).")
    var noApplications = false

    @Flag(name: .customLong("no-icon"), help: "Leave out the guest's icon (the distribution's logo, a PNG, base64 in <icon>, as virt-inspector finds it; Linux guests only).")
    var noIcon = false


    func validate() throws {
        if xml && json { throw ValidationError("--xml and --json cannot be used together") }
        if xpath != nil && json { throw ValidationError("--xpath queries the XML output; it cannot be used with --json") }
    }

    func run() throws {
        let guest = try Session.openGuest(image)
        // libxml2 is loaded on demand; the sandbox would keep its file from being opened later.
        if xpath != nil { try XPathQuery.loadLibrary() }
        // librpm, rpm's configuration and the private directory an RPM guest's database is
        // copied into, made now for the same reason (RPMDatabase.swift), removed on every way out.
        let rpm = noApplications ? nil : RPMDatabase.prepare()
        defer { rpm?.remove() }
        var rules: [Sandbox.Rule] = []
        if let dirs = rpm?.sandboxDirectories { rules = [.writable(dirs.directory), .removeDirectories(dirs.parent)] }
        // Everything is open; what follows parses guest bytes (Sandbox.swift).
        try Sandbox.enter(rules: rules)
        let systems = Inspector.inspect(guest)
        for os in systems { for warning in os.warnings { Diagnostics.warn(warning) } }
        if systems.isEmpty {
            Diagnostics.warn("\(guest.drives.map { $0.device.displayName }.joined(separator: ", ")): no operating system found")
        }
        // virt-inspector mounts each OS to read its package database, unless told not to.
        let applications = noApplications ? nil : systems.map { Applications.list(for: $0, in: guest, rpm: rpm, warn: Diagnostics.warn) }
        let icons = noIcon ? nil : systems.map { GuestIcon.find(for: $0, in: guest) }
        if json { return try StandardOutput.write(Self.json(systems, guest: guest, applications: applications, icons: icons)) }
        let document = Self.xml(systems, guest: guest, applications: applications, icons: icons)
        if let xpath { return try StandardOutput.write(XPathQuery.evaluate(xpath, on: Array(document.utf8))) }
        try StandardOutput.write(document)
    }

    /// Filesystems on the same disks, as virt-inspector lists them under each OS.
    static func filesystems(_ guest: Guest) -> [GuestDevice] {
        guest.devices.filter { $0.content.type != nil && $0.content.type != "LVM2_member" && $0.content.type != "crypto_LUKS" }
    }

    static func xml(_ systems: [OperatingSystem], guest: Guest, applications: [[Application]]? = nil, icons: [[UInt8]?]? = nil) -> String {
        var out = "<?xml version=\"1.0\"?>\n<operatingsystems>\n"
        for (index, os) in systems.enumerated() {
            out += "  <operatingsystem>\n"
            func element(_ name: String, _ value: String?) {
                if let value { out += "    <\(name)>\(Markup.xml(value))</\(name)>\n" }
            }
            element("root", os.root)
            element("name", os.type)
            element("arch", os.architecture)
            element("distro", os.distro)
            element("product_name", os.productName)
            element("product_variant", os.productVariant)
            element("major_version", String(os.majorVersion))
            element("minor_version", String(os.minorVersion))
            element("package_format", os.packageFormat)
            element("package_management", os.packageManagement)
            element("windows_systemroot", os.windowsSystemRoot)
            element("windows_current_control_set", os.windowsCurrentControlSet)
            element("hostname", os.hostname)
            element("build_id", os.buildID)
            element("osinfo", os.osinfo)
            out += "    <mountpoints>\n"
            for m in os.mountpoints {
                out += "      <mountpoint dev=\"\(Markup.xml(m.device))\">\(Markup.xml(m.mountpoint))</mountpoint>\n"
            }
            out += "    </mountpoints>\n    <filesystems>\n"
            for fs in filesystems(guest) {
                out += "      <filesystem dev=\"\(Markup.xml(fs.name))\">\n"
                out += "        <type>\(Markup.xml(fs.content.type ?? "unknown"))</type>\n"
                if let label = fs.content.label { out += "        <label>\(Markup.xml(label))</label>\n" }
                if let uuid = fs.content.uuid { out += "        <uuid>\(Markup.xml(uuid))</uuid>\n" }
                out += "      </filesystem>\n"
            }
            out += "    </filesystems>\n"
            // virt-inspector leaves the element out when there are no mappings (output_drive_mappings).
            if !os.driveMappings.isEmpty {
                out += "    <drive_mappings>\n"
                for m in os.driveMappings {
                    out += "      <drive_mapping name=\"\(Markup.xml(m.letter))\">\(Markup.xml(m.device))</drive_mapping>\n"
                }
                out += "    </drive_mappings>\n"
            }
            if let apps = applications?[index] { out += applicationsXML(apps) }
            // virt-inspector writes the icon after the applications, with libxml2's base64
            // (CRLF every 72 characters) and no indentation before the closing tag.
            if let icon = icons?[index] { out += "    <icon>\(GuestIcon.base64(icon))</icon>\n" }
            out += "  </operatingsystem>\n"
        }
        return out + "</operatingsystems>\n"
    }

    /// virt-inspector `output_applications`: each field only when set, the epoch only when not 0.
    static func applicationsXML(_ apps: [Application]) -> String {
        // libxml2's writer closes an element with no content as <applications/>.
        if apps.isEmpty { return "    <applications/>\n" }
        var out = "    <applications>\n"
        for app in apps {
            out += "      <application>\n"
            func element(_ name: String, _ value: String) {
                if !value.isEmpty { out += "        <\(name)>\(Markup.xml(value))</\(name)>\n" }
            }
            element("name", app.name)
            element("display_name", app.displayName)
            if app.epoch != 0 { element("epoch", String(app.epoch)) }
            element("version", app.version)
            element("release", app.release)
            element("arch", app.arch)
            element("install_path", app.installPath)
            element("publisher", app.publisher)
            element("url", app.url)
            element("source_package", app.sourcePackage)
            element("summary", app.summary)
            element("description", app.description)
            out += "      </application>\n"
        }
        return out + "    </applications>\n"
    }

    static func applicationsJSON(_ apps: [Application]) -> String {
        "[" + apps.map { app in
            "{\"name\": \(Markup.json(app.name)), \"display_name\": \(Markup.json(app.displayName)), \"epoch\": \(app.epoch), \"version\": \(Markup.json(app.version)), "
                + "\"release\": \(Markup.json(app.release)), \"arch\": \(Markup.json(app.arch)), \"url\": \(Markup.json(app.url)), "
                + "\"install_path\": \(Markup.json(app.installPath)), \"publisher\": \(Markup.json(app.publisher)), "
                + "\"source_package\": \(Markup.json(app.sourcePackage)), \"summary\": \(Markup.json(app.summary)), "
                + "\"description\": \(Markup.json(app.description))}"
        }.joined(separator: ", ") + "]"
    }

    static func json(_ systems: [OperatingSystem], guest: Guest, applications: [[Application]]? = nil, icons: [[UInt8]?]? = nil) -> String {
        let items = systems.enumerated().map { index, os -> String in
            var apps = applications.map { ", \"applications\": " + applicationsJSON($0[index]) } ?? ""
            if let icon = icons?[index] { apps += ", \"icon\": \"\(GuestIcon.base64(icon, lineLength: nil))\"" }
            let drives = os.driveMappings.map { "{\"name\": \(Markup.json($0.letter)), \"device\": \(Markup.json($0.device))}" }
            let windows = os.type != "windows" ? "" : """
                , "product_variant": \(Markup.json(os.productVariant)), "edition_id": \(Markup.json(os.editionID)), \
                "build_id": \(Markup.json(os.buildID)), "windows_systemroot": \(Markup.json(os.windowsSystemRoot)), \
                "windows_current_control_set": \(Markup.json(os.windowsCurrentControlSet)), \
                "drive_mappings": [\(drives.joined(separator: ", "))]
                """
            let mounts = os.mountpoints.map { "{\"mountpoint\": \(Markup.json($0.mountpoint)), \"device\": \(Markup.json($0.device))}" }
            let fss = filesystems(guest).map {
                "{\"device\": \(Markup.json($0.name)), \"type\": \(Markup.json($0.content.type)), \"label\": \(Markup.json($0.content.label)), \"uuid\": \(Markup.json($0.content.uuid))}"
            }
            return """
                {"root": \(Markup.json(os.root)), "name": \(Markup.json(os.type)), "arch": \(Markup.json(os.architecture)), \
                "distro": \(Markup.json(os.distro)), "product_name": \(Markup.json(os.productName)), \
                "major_version": \(os.majorVersion), "minor_version": \(os.minorVersion), \
                "package_format": \(Markup.json(os.packageFormat)), "package_management": \(Markup.json(os.packageManagement)), \
                "hostname": \(Markup.json(os.hostname)), "osinfo": \(Markup.json(os.osinfo)), \
                "mountpoints": [\(mounts.joined(separator: ", "))], "filesystems": [\(fss.joined(separator: ", "))]\(windows)\(apps)}
                """
        }
        return "{\"operatingsystems\": [" + items.joined(separator: ",\n") + "]}\n"
    }
}
