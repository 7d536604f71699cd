using ERCache.Tiers.Eviction;
using ERCache.Diagnostics;
using ERCache.Storage;

namespace ERCache.Tiers;

/// <summary>Builds the tier a <see cref="TierPolicy"/> describes, closing the generic types once here.</summary>
internal static class TierFactory
{
    public static EmbeddingTier? Create(ModelPolicy model, TierPolicy tier, ERCacheMetrics metrics)
    {
        if (!tier.Enabled)
        {
            return null;
        }

        return tier.Format switch
        {
            StorageFormat.Float32 => Create<Float32Codec>(model, tier, metrics),
            StorageFormat.Float16 => Create<Float16Codec>(model, tier, metrics),
            StorageFormat.Int8 => Create<Int8RowwiseCodec>(model, tier, metrics),
            _ => throw new InvalidOperationException($"Storage format {tier.Format} has no codec."),
        };
    }

    private static EmbeddingTier Create<TCodec>(ModelPolicy model, TierPolicy tier, ERCacheMetrics metrics)
        where TCodec : struct, IRowCodec => tier.Eviction switch
        {
            EvictionStrategy.Lru => new SlabTier<LruOrder, TCodec>(model.Name, tier, model.Dimensions, capacity => new LruOrder(capacity), metrics),
            EvictionStrategy.Fifo => new SlabTier<FifoOrder, TCodec>(model.Name, tier, model.Dimensions, capacity => new FifoOrder(capacity), metrics),
            EvictionStrategy.Sieve => new SlabTier<SieveOrder, TCodec>(model.Name, tier, model.Dimensions, capacity => new SieveOrder(capacity), metrics),
            EvictionStrategy.MemoryCache => new MemoryCacheTier<TCodec>(model.Name, model.Version, tier, model.Dimensions, metrics),
            _ => throw new InvalidOperationException($"Eviction strategy {tier.Eviction} has no implementation."),
        };
}
