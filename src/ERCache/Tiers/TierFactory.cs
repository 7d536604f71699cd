using ERCache.Diagnostics;
using ERCache.Storage;
using ERCache.Tiers.Eviction;

namespace ERCache.Tiers;

/// <summary>Builds the tier a <see cref="TierPolicy"/> describes, closing the generic types once here.</summary>
internal static class TierFactory
{
    public static EmbeddingTier? Create(ModelPolicy model, TierPolicy tier, ERCacheMetrics metrics) =>
        tier.Enabled ? StorageFormats.Dispatch<Builder, EmbeddingTier>(tier.Format, new Builder(model, tier, metrics)) : null;

    private readonly struct Builder(ModelPolicy model, TierPolicy tier, ERCacheMetrics metrics) : IFormatVisitor<EmbeddingTier>
    {
        public EmbeddingTier Visit<TCodec>()
            where TCodec : struct, IRowCodec => tier.Eviction switch
            {
                EvictionStrategy.Lru => new SlabTier<LruOrder, TCodec>(model.Name, tier, model.Dimensions, capacity => new LruOrder(capacity), metrics),
                EvictionStrategy.Fifo => new SlabTier<FifoOrder, TCodec>(model.Name, tier, model.Dimensions, capacity => new FifoOrder(capacity), metrics),
                EvictionStrategy.Sieve => new SlabTier<SieveOrder, TCodec>(model.Name, tier, model.Dimensions, capacity => new SieveOrder(capacity), metrics),
                EvictionStrategy.MemoryCache => new MemoryCacheTier<TCodec>(model.Name, model.Version, tier, model.Dimensions, metrics),
                _ => throw new InvalidOperationException($"Eviction strategy {tier.Eviction} has no implementation."),
            };
    }
}
