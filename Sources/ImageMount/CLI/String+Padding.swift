extension String {
    /// printf's `%-Ns`: padded with spaces on the right to `width` bytes.
    func leftAligned(_ width: Int) -> String {
        self + String(repeating: " ", count: max(0, width - utf8.count))
    }

    /// printf's `%Ns`: padded with spaces on the left to `width` bytes.
    func rightAligned(_ width: Int) -> String {
        String(repeating: " ", count: max(0, width - utf8.count)) + self
    }
}
