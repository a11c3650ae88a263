/// Saturating sums and products of on-disk figures that only bound others (a size limit, a
/// statfs total): a value read from an image that would overflow gives `.max`, not a trap.
extension UInt64 {
    /// `self + other`, or `.max` when the sum does not fit (for figures that only bound others).
    package func saturatingAdd(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// `self * other`, or `.max` when the product does not fit.
    package func saturatingMultiply(_ other: UInt64) -> UInt64 {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? .max : product
    }
}
