using ERCache.Diagnostics;
using ERCache.Storage;
using ERCache.Tiers.Eviction;

namespace ERCache.Tiers;

/// <summary>Builds the tier a <see cref="TierPolicy"/> describes, closing the generic types once here.</summary>
internal static class TierFactory
{
    public static EmbeddingTier? Create(ModelPolicy model, TierPolicy tier, ERCacheMetrics metrics) =>
        tier.Enabled ? StorageFormats.Dispatch<Builder, EmbeddingTier>(tier.Format, new Builder(model, tier, metrics)) : null;

    /// <summary>The format's codec first, then the strategy's order: both generic arguments closed here.</summary>
    private readonly struct Builder(ModelPolicy model, TierPolicy tier, ERCacheMetrics metrics) : IFormatVisitor<EmbeddingTier>
    {
        public EmbeddingTier Visit<TCodec>()
            where TCodec : struct, IRowCodec =>
            EvictionOrders.Dispatch<OrderBuilder<TCodec>, EmbeddingTier>(tier.Eviction, new OrderBuilder<TCodec>(model, tier, metrics));
    }

    private readonly struct OrderBuilder<TCodec>(ModelPolicy model, TierPolicy tier, ERCacheMetrics metrics) : IEvictionVisitor<EmbeddingTier>
        where TCodec : struct, IRowCodec
    {
        public EmbeddingTier Visit<TOrder>(Func<int, TOrder> create)
            where TOrder : struct, IEvictionOrder =>
            new SlabTier<TOrder, TCodec>(model.Name, tier, model.Dimensions, create, metrics);

        public EmbeddingTier VisitMemoryCache() => new MemoryCacheTier<TCodec>(model.Name, model.Version, tier, model.Dimensions, metrics);
    }
}
