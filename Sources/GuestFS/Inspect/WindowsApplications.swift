import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

/// The applications of a Windows guest, as libguestfs lists them (lib/inspect-apps.c
/// `list_applications_windows`): each subkey of the SOFTWARE hive's
/// `Microsoft\Windows\CurrentVersion\Uninstall` (native programs) and then of
/// `WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall` (32-bit programs on 64-bit Windows)
/// that has a DisplayName value. The subkey's name is the application's name (the display name
/// depends on the installed language, libguestfs's comment says); DisplayVersion, Publisher,
/// URLInfoAbout, Comments and InstallLocation give version, publisher, url, description and
/// install_path. A value that is not a string, or not valid UTF-16, leaves its field empty.
enum WindowsApplications {
    /// The two key paths, in libguestfs's order.
    static let uninstallPaths = [
        ["Microsoft", "Windows", "CurrentVersion", "Uninstall"],
        ["WOW6432Node", "Microsoft", "Windows", "CurrentVersion", "Uninstall"],
    ]

    /// The applications of Windows guest `os` in `tree` (its C: at `/`). A SOFTWARE hive that
    /// cannot be opened lists none; inspection has already said why (WindowsInspector.facts).
    static func list(for os: OperatingSystem, tree: MountTree) -> [Application] {
        var warnings: [String] = []
        return WindowsInspector.openConfigHive("software", of: os, tree: tree, warnings: &warnings).map(list) ?? []
    }

    static func list(_ hive: Hive) -> [Application] {
        var apps: [Application] = []
        for path in uninstallPaths {
            guard let uninstall = hive.node(path) else { continue }
            for (name, key) in hive.children(uninstall) {
                func string(_ value: String) -> String {
                    hive.value(key, value).flatMap { try? hive.string($0) } ?? ""
                }
                // libguestfs's get_value: a missing or unreadable DisplayName skips the key.
                guard let displayValue = hive.value(key, "DisplayName"), let displayName = try? hive.string(displayValue) else { continue }
                var app = Application()
                app.name = name
                app.displayName = displayName
                app.version = string("DisplayVersion")
                app.publisher = string("Publisher")
                app.url = string("URLInfoAbout")
                app.description = string("Comments")
                app.installPath = string("InstallLocation")
                apps.append(app)
            }
        }
        return apps
    }
}
