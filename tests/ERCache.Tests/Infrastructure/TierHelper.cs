using ERCache.Diagnostics;
using ERCache.Tiers;

namespace ERCache.Tests.Infrastructure;

/// <summary>Builds single tiers for storage-level tests.</summary>
internal static class TierHelper
{
    public static EmbeddingTier Create(
        string eviction, int capacity, int dimensions, ERCacheMetrics metrics, TierKind kind = TierKind.Direct, string format = "Float32", long? maxBytes = null,
        bool hugePages = true)
    {
        var options = CacheFixture.DefaultModel(dimensions);
        var tier = kind == TierKind.Direct ? options.Direct : options.Failover;
        tier.Eviction = Enum.Parse<EvictionStrategy>(eviction);
        tier.Capacity = capacity;
        tier.Format = Enum.Parse<StorageFormat>(format);
        tier.MaxBytes = maxBytes;
        tier.HugePages = hugePages;
        var policy = ModelPolicy.From("m", options);
        return TierFactory.Create(policy, kind == TierKind.Direct ? policy.Direct : policy.Failover, metrics)!;
    }

    public static float[] Vector(long user, int dimensions)
    {
        var v = new float[dimensions];
        TestTower.Fill(v, user, 0);
        return v;
    }

    public static bool Contains(EmbeddingTier tier, long user) =>
        tier.TryRead(user, now: 0, ttl: long.MaxValue, new float[tier.Dimensions], out _);
}
