namespace ERCache.Tiers.Eviction;

/// <summary>Something done once the eviction order of an <see cref="EvictionStrategy"/> is known, as a generic method the
/// JIT specialises per order; <see cref="EvictionStrategy.MemoryCache"/> has no order of ours.</summary>
internal interface IEvictionVisitor<out TResult>
{
    TResult Visit<TOrder>(Func<int, TOrder> create)
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
            EvictionStrategy.Lru => visitor.Visit(static capacity => new LruOrder(capacity)),
            EvictionStrategy.Fifo => visitor.Visit(static capacity => new FifoOrder(capacity)),
            EvictionStrategy.Sieve => visitor.Visit(static capacity => new SieveOrder(capacity)),
            EvictionStrategy.MemoryCache => visitor.VisitMemoryCache(),
            _ => throw new ArgumentOutOfRangeException(nameof(eviction), eviction, "Unknown eviction strategy."),
        };
}
