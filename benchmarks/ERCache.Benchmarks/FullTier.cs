using ERCache.Diagnostics;
using ERCache.Tiers;

namespace ERCache.Benchmarks;

/// <summary>Builds a direct tier filled with users 0..entries-1, all holding <c>vector</c> (of <c>capacity</c> entries, by
/// default <c>entries</c>), for the write-path, memory and snapshot figures; with no entries, an empty tier for the fill
/// figures (<c>hugePages</c> is the tier's <c>HugePages</c> setting). Every entry is stamped 0 unless
/// <c>writtenAt</c> gives each user's stamp.</summary>
internal static class FullTier
{
    public static EmbeddingTier Create(
        int entries, string eviction, string format, float[] vector, ERCacheMetrics metrics, int? capacity = null, bool hugePages = true,
        Func<long, long>? writtenAt = null)
    {
        var options = new ModelOptions
        {
            Dimensions = vector.Length,
            Direct = new TierOptions { Ttl = TimeSpan.FromDays(1), Capacity = capacity ?? entries, Eviction = Enum.Parse<EvictionStrategy>(eviction), Format = Enum.Parse<StorageFormat>(format), HugePages = hugePages },
            Failover = new TierOptions { Enabled = false },
        };
        var policy = ModelPolicy.From("m", options);
        var tier = TierFactory.Create(policy, policy.Direct, metrics)!;
        for (long u = 0; u < entries; u++)
        {
            tier.Write(u, vector, writtenAt: writtenAt?.Invoke(u) ?? 0);
        }

        return tier;
    }
}
