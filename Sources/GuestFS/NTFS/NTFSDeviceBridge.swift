#if canImport(Glibc)
import Glibc
#endif
import GuestFSBlock
import CNtfs3g

/// Connects the ntfs_device in `CNtfs3g` to a Swift `BlockDevice`.
///
/// `ntfs_device_alloc` keeps an opaque context pointer per device: a retained
/// `NTFSDeviceContext`, released when the volume is unmounted. The callbacks never throw
/// across the C boundary: they keep the rich `ImageError` on the context and return EIO (ENOSPC
/// stays ENOSPC), so the Swift caller of the libntfs-3g function can rethrow the real error.
final class NTFSDeviceContext: @unchecked Sendable {
    let device: any BlockDevice
    /// The last I/O error the callback swallowed; guarded by the owning filesystem's lock
    /// (every libntfs-3g call, and so every callback, runs under it).
    var lastError: ImageError?
    init(device: any BlockDevice) { self.device = device }
}

enum NTFSDeviceBridge {
    /// Registers the callback and the log capture once (a `static let` runs once).
    static let installOnce: Void = {
        cntfs3g_setup({ raw, offset, length, buffer in
            guard let raw, let buffer, length <= UInt64(Int.max) else { return EINVAL }
            let context = Unmanaged<NTFSDeviceContext>.fromOpaque(raw).takeUnretainedValue()
            let target = UnsafeMutableRawBufferPointer(start: buffer, count: Int(length))
            do {
                // The shim bounded [offset, offset + length) to the device size already.
                try context.device.read(into: target, at: offset)
                return 0
            } catch {
                context.lastError = ImageError.wrap(error)
                // libntfs-3g would otherwise act on stale buffer contents.
                target.initializeMemory(as: UInt8.self, repeating: 0)
                return EIO
            }
        }, { raw, offset, length, buffer in
            guard let raw, let buffer, length <= UInt64(Int.max) else { return EINVAL }
            let context = Unmanaged<NTFSDeviceContext>.fromOpaque(raw).takeUnretainedValue()
            do {
                try context.device.write(UnsafeRawBufferPointer(start: buffer, count: Int(length)), at: offset)
                return 0
            } catch {
                let wrapped = ImageError.wrap(error)
                context.lastError = wrapped
                return wrapped.errno == .noSpace ? ENOSPC : EIO
            }
        }, { raw in
            guard let raw else { return EINVAL }
            let context = Unmanaged<NTFSDeviceContext>.fromOpaque(raw).takeUnretainedValue()
            do {
                try context.device.flush()
                return 0
            } catch {
                context.lastError = ImageError.wrap(error)
                return EIO
            }
        })
    }()
}
