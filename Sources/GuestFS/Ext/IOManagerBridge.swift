import GuestFSBlock
import GuestFSFilesystem
import CExt2fs
import Synchronization

/// Connects the C io_manager in `CExt2fs` to Swift `BlockDevice`s.
///
/// `ext2fs_open2` receives a token such as `imagemount:7` instead of a host path; the shim's
/// `open` asks this bridge for the device registered under that token and keeps a retained
/// `ChannelContext` in the channel's private data until `close`. Callbacks never throw across
/// the C boundary: they keep the rich `ImageError` on the context and return EIO, so the Swift
/// caller of the libext2fs function can rethrow the real error.
enum IOManagerBridge {
    /// Per-channel state behind `io_channel->private_data`.
    final class ChannelContext: @unchecked Sendable {
        let device: any BlockDevice
        let writable: Bool
        /// The last I/O error a callback swallowed; guarded by the filesystem lock of the caller.
        var lastError: ImageError?
        /// Recently read metadata blocks (write-through); guarded by the filesystem lock too.
        let cache = IOChannelCache(capacity: 1024)
        /// Blocks written during the current write operation, not yet on the device (at most
        /// 2 048 blocks, 8 MiB at 4 KiB); guarded by the filesystem lock too.
        let gather = IOWriteGather(capacity: 2048)
        /// Where `readAhead` reads a run (IOChannelReadahead.swift): one buffer, reused, at most
        /// `maxReadaheadBlocks` blocks; guarded by the filesystem lock too.
        var readaheadBuffer = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        init(device: any BlockDevice, writable: Bool) { self.device = device; self.writable = writable }
        deinit { readaheadBuffer.deallocate() }
    }

    private static let registry = Mutex<(next: Int, devices: [String: any BlockDevice])>((0, [:]))

    /// Registers `device` and returns the token to pass to ext2fs_open2.
    static func register(_ device: any BlockDevice) -> String {
        installOnce
        return registry.withLock { state in
            state.next += 1
            let token = "imagemount:\(state.next)"
            state.devices[token] = device
            return token
        }
    }

    /// Forgets a token once the filesystem that used it is open or closed.
    static func unregister(_ token: String) {
        _ = registry.withLock { $0.devices.removeValue(forKey: token) }
    }

    static func context(of channel: io_channel?) -> ChannelContext? {
        guard let channel, let raw = cext2fs_channel_context(channel) else { return nil }
        return Unmanaged<ChannelContext>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Installs the callbacks the first time a device is registered (a `static let` runs once).
    private static let installOnce: Void = {
        var callbacks = cext2fs_callbacks()
        callbacks.open = { name, writable in
            guard let name else { return nil }
            let token = String(cString: name)
            guard let device = IOManagerBridge.registry.withLock({ $0.devices[token] }) else { return nil }
            if writable != 0 && !device.isWritable { return nil }
            let context = ChannelContext(device: device, writable: writable != 0)
            return Unmanaged.passRetained(context).toOpaque()
        }
        callbacks.close = { raw in
            guard let raw else { return }
            Unmanaged<ChannelContext>.fromOpaque(raw).release()
        }
        callbacks.read = { raw, offset, length, buffer in
            guard let raw, let buffer else { return errcode_t(EINVAL) }
            let context = Unmanaged<ChannelContext>.fromOpaque(raw).takeUnretainedValue()
            let target = UnsafeMutableRawBufferPointer(start: buffer, count: Int(length))
            // The cache holds what libext2fs last wrote (held blocks included: see write).
            if context.cache.read(at: offset, into: target) { return 0 }
            do {
                try context.device.read(into: target, at: offset)
                // Blocks written in this operation but not yet on the device win over it.
                context.gather.overlay(at: offset, target)
                context.cache.store(at: offset, UnsafeRawBufferPointer(target))
                return 0
            } catch {
                context.lastError = ImageError.wrap(error)
                // libext2fs would otherwise act on stale buffer contents.
                target.initializeMemory(as: UInt8.self, repeating: 0)
                return errcode_t(EIO)
            }
        }
        callbacks.write = { raw, offset, length, buffer in
            guard let raw, let buffer else { return errcode_t(EINVAL) }
            let context = Unmanaged<ChannelContext>.fromOpaque(raw).takeUnretainedValue()
            guard context.writable else { return errcode_t(EROFS) }
            let source = UnsafeRawBufferPointer(start: buffer, count: Int(length))
            do {
                func held() -> Bool { context.gather.holds(offset: offset, length: source.count) && context.gather.hold(at: offset, source) }
                if !held() {
                    // No room, or a write not to hold: what is held goes first, in its order.
                    try context.gather.drain(to: context.device)
                    if !held() { try context.device.write(source, at: offset) }
                }
                context.cache.wrote(at: offset, source)
                return 0
            } catch {
                // What reached the device is unknown now: forget everything.
                context.cache.removeAll()
                context.lastError = ImageError.wrap(error)
                return errcode_t(EIO)
            }
        }
        callbacks.flush = { raw in
            guard let raw else { return errcode_t(EINVAL) }
            let context = Unmanaged<ChannelContext>.fromOpaque(raw).takeUnretainedValue()
            guard context.writable else { return 0 }
            do {
                try context.gather.drain(to: context.device)
                try context.device.flush()
                return 0
            } catch {
                context.cache.removeAll()
                context.lastError = ImageError.wrap(error)
                return errcode_t(EIO)
            }
        }
        cext2fs_set_callbacks(&callbacks)
        // Register the ext2 com_err table so error_message() gives text, not "Unknown code".
        initialize_ext2_error_table()
    }()
}
