namespace ERCache.Tiers.Eviction;

/// <summary>Something done once the eviction order of an <see cref="EvictionStrategy"/> is known, as a generic method the
/// JIT specialises per order; <see cref="EvictionStrategy.MemoryCache"/> has no order of ours.</summary>
internal interface IEvictionVisitor<out TResult>
{
    /// <summary>Builds on the order <typeparamref name="TOrder"/>; <paramref name="create"/> makes one for a capacity and
    /// whether the tier is read mostly from memory (see <see cref="SlabTier{TPolicy, TCodec}.MinDrainPrefetchTierBytes"/>).</summary>
    TResult Visit<TOrder>(Func<int, bool, TOrder> create)
        where TOrder : struct, IEvictionOrder;

    TResult VisitMemoryCache();
}

/// <summary>The one mapping from <see cref="EvictionStrategy"/> to its order; the tier factory and the sizing both go
/// through it (as <see cref="Storage.StorageFormats"/> does for formats).</summary>
internal static class EvictionOrders
{
    public static TResult Dispatch<TVisitor, TResult>(EvictionStrategy eviction, TVisitor visitor)
        where TVisitor : IEvictionVisitor<TResult>, allows ref struct => eviction switch
        {
            EvictionStrategy.Lru => visitor.Visit(static (capacity, fromMemory) => new LruOrder(capacity, prefetchDrains: fromMemory)),
            EvictionStrategy.Fifo => visitor.Visit(static (capacity, _) => new FifoOrder(capacity)),
            EvictionStrategy.Sieve => visitor.Visit(static (capacity, _) => new SieveOrder(capacity)),
            EvictionStrategy.MemoryCache => visitor.VisitMemoryCache(),
            _ => throw new ArgumentOutOfRangeException(nameof(eviction), eviction, "Unknown eviction strategy."),
        };
}
