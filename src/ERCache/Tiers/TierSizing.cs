using ERCache.Tiers.Eviction;
using ERCache.Storage;

namespace ERCache.Tiers;

/// <summary>
/// What a slab tier costs per entry, computed before it is built: the validator uses it to check <c>MaxBytes</c>,
/// and the tier uses it to turn <c>MaxBytes</c> into a capacity.
/// </summary>
internal static class TierSizing
{
    /// <summary>Bytes a slab tier holds whatever its size: the smallest index, the hit buffer and object headers.</summary>
    public const long FixedBytes = 8 * 1024;

    /// <summary>Upper bound of the index's share per entry: 4/3 of a 4-byte bucket and its 1-byte distance, rounded up.</summary>
    public const int IndexBytesPerEntry = 7;

    public static int PolicyBytes(EvictionStrategy eviction) => EvictionOrders.Dispatch<BytesPerEntryOf, int>(eviction, default);

    /// <summary>Bytes one entry of a full slab tier takes at most: slot header and row, index share, eviction links.</summary>
    public static int BytesPerEntryBound(StorageFormat format, EvictionStrategy eviction, int dimensions) =>
        SlotPage.StrideOf(StorageFormats.RowBytes(format, dimensions)) + IndexBytesPerEntry + PolicyBytes(eviction);

    /// <summary>The entries a tier may hold: its <c>Capacity</c>, lowered so that a full tier fits in <c>MaxBytes</c>.</summary>
    public static int EffectiveCapacity(TierPolicy tier, int dimensions)
    {
        if (tier.MaxBytes is not long maxBytes)
        {
            return tier.Capacity;
        }

        long fits = (maxBytes - FixedBytes) / BytesPerEntryBound(tier.Format, tier.Eviction, dimensions);
        return (int)Math.Clamp(fits, 0, tier.Capacity);
    }

    private readonly struct BytesPerEntryOf : IEvictionVisitor<int>
    {
        public int Visit<TOrder>(Func<int, bool, TOrder> create)
            where TOrder : struct, IEvictionOrder => TOrder.BytesPerEntry;

        public int VisitMemoryCache() => 0;
    }
}
