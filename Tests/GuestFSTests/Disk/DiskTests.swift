import Testing

/// Groups the suites of `Tests/GuestFSTests/Disk/` (one per file of `Sources/GuestFS/Disk/`), so
/// `swift test --filter Disk` runs exactly them.
@Suite enum DiskTests {}

extension DiskTests {
    /// The suites of `Tests/GuestFSTests/Disk/LVM/`, so `swift test --filter LVM` runs them all.
    @Suite enum LVMTests {}
}
