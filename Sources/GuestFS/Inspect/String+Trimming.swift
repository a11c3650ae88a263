import GuestFSBlock
import GuestFSDisk
import GuestFSFilesystem
import GuestFS

extension String {
    /// The string without leading and trailing copies of `set` (os-release values, fstab fields).
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}
