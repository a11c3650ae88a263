import Testing

/// Groups the suites of `Tests/GuestFSTests/Disk/` (one per file of `Sources/GuestFS/Disk/`), so
/// `swift test --filter Disk` runs exactly them.
@Suite enum DiskTests {}
