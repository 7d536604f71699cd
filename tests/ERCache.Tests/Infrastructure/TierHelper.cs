using ERCache.Diagnostics;
using ERCache.Tiers;

namespace ERCache.Tests.Infrastructure;

/// <summary>Builds single tiers for storage-level tests.</summary>
internal static class TierHelper
{
    public static EmbeddingTier Create(
        string eviction, int capacity, int dimensions, ERCacheMetrics metrics, TierKind kind = TierKind.Direct, string format = "Float32", long? maxBytes = null,
        bool hugePages = true, TaskScheduler? slabPreparation = null)
    {
        var options = CacheFixture.DefaultModel(dimensions);
        var tier = kind == TierKind.Direct ? options.Direct : options.Failover;
        tier.Eviction = Enum.Parse<EvictionStrategy>(eviction);
        tier.Capacity = capacity;
        tier.Format = Enum.Parse<StorageFormat>(format);
        tier.MaxBytes = maxBytes;
        tier.HugePages = hugePages;
        var policy = ModelPolicy.From("m", options);
        return TierFactory.Create(policy, kind == TierKind.Direct ? policy.Direct : policy.Failover, metrics, slabPreparation)!;
    }

    public static float[] Vector(long user, int dimensions)
    {
        var v = new float[dimensions];
        TestTower.Fill(v, user, 0);
        return v;
    }

    /// <summary>Writes users <paramref name="from"/> to <paramref name="to"/> (exclusive), each its own
    /// <see cref="Vector"/> stamped with its id.</summary>
    public static void WriteUsers(EmbeddingTier tier, long from, long to)
    {
        for (long u = from; u < to; u++)
        {
            tier.Write(u, Vector(u, tier.Dimensions), writtenAt: u);
        }
    }

    /// <summary>Users <paramref name="from"/> to <paramref name="users"/> (exclusive), as <see cref="WriteUsers"/> wrote
    /// them: each is there, with its own stamp and its own vector.</summary>
    public static void AssertEveryUserReadsItsOwnVector(EmbeddingTier tier, long users, long from = 0)
    {
        var row = new float[tier.Dimensions];
        for (long u = from; u < users; u++)
        {
            Assert.True(tier.TryRead(u, now: users, ttl: long.MaxValue, row, out long writtenAt), $"user {u}");
            Assert.Equal(u, writtenAt);
            Assert.Equal(Vector(u, tier.Dimensions), row);
        }
    }

    public static bool Contains(EmbeddingTier tier, long user) =>
        tier.TryRead(user, now: 0, ttl: long.MaxValue, new float[tier.Dimensions], out _);
}
