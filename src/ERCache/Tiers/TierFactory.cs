using ERCache.Diagnostics;
using ERCache.Storage;
using ERCache.Tiers.Eviction;

namespace ERCache.Tiers;

/// <summary>Builds the tier a <see cref="TierPolicy"/> describes, closing the generic types once here.</summary>
internal static class TierFactory
{
    /// <summary>The tier, or null when it is disabled. <paramref name="slabPreparation"/>: where a slab tier prepares its
    /// slabs ahead (null: the thread pool; tests pass a manual scheduler).</summary>
    public static EmbeddingTier? Create(ModelPolicy model, TierPolicy tier, ERCacheMetrics metrics, TaskScheduler? slabPreparation = null) =>
        tier.Enabled ? StorageFormats.Dispatch<Builder, EmbeddingTier>(tier.Format, new Builder(model, tier, metrics, slabPreparation)) : null;

    /// <summary>The format's codec first, then the strategy's order: both generic arguments closed here.</summary>
    private readonly struct Builder(ModelPolicy model, TierPolicy tier, ERCacheMetrics metrics, TaskScheduler? slabPreparation) : IFormatVisitor<EmbeddingTier>
    {
        public EmbeddingTier Visit<TCodec>()
            where TCodec : struct, IRowCodec =>
            EvictionOrders.Dispatch<OrderBuilder<TCodec>, EmbeddingTier>(tier.Eviction, new OrderBuilder<TCodec>(model, tier, metrics, slabPreparation));
    }

    private readonly struct OrderBuilder<TCodec>(ModelPolicy model, TierPolicy tier, ERCacheMetrics metrics, TaskScheduler? slabPreparation)
        : IEvictionVisitor<EmbeddingTier>
        where TCodec : struct, IRowCodec
    {
        public EmbeddingTier Visit<TOrder>(Func<int, bool, TOrder> create)
            where TOrder : struct, IEvictionOrder =>
            new SlabTier<TOrder, TCodec>(model.Name, tier, model.Dimensions, create, metrics, slabPreparation);

        public EmbeddingTier VisitMemoryCache() => new MemoryCacheTier<TCodec>(model.Name, model.Version, tier, model.Dimensions, metrics);
    }
}
