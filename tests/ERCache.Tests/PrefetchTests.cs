using ERCache.Diagnostics;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The batch path's prefetch is only a hint: it never changes what a tier holds, returns or orders.</summary>
public sealed class PrefetchTests
{
    [Theory]
    [InlineData("Lru", "Float32")]
    [InlineData("Sieve", "Int8")]
    [InlineData("Fifo", "Float16")]
    [InlineData("MemoryCache", "Float32")]
    public void Prefetching_present_absent_and_removed_users_changes_nothing(string eviction, string format)
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create(eviction, capacity: 64, dimensions: 8, metrics, format: format);
        for (long u = 0; u < 64; u++)
        {
            tier.Write(u, TierHelper.Vector(u, 8), writtenAt: u);
        }

        tier.Remove(5);
        long evictions = tier.Evictions;
        var users = new long[] { 0, 5, 63, 64, -1, long.MaxValue, long.MinValue, 17, 17, 3, 9, 12, 40, 41, 42, 43, 44, 45, 46 };
        tier.Prefetch(users);
        tier.Prefetch([]);
        tier.Prefetch(users.AsSpan(0, 1));

        Assert.Equal(63, tier.Count);
        Assert.Equal(evictions, tier.Evictions);
        var row = new float[8];
        for (long u = 0; u < 64; u++)
        {
            bool found = tier.TryRead(u, now: 100, ttl: long.MaxValue, row, out long writtenAt);
            Assert.Equal(u != 5, found);
            if (found)
            {
                Assert.Equal(u, writtenAt);
                var expected = TierHelper.Vector(u, 8);
                double tolerance = format == "Int8" ? expected.Max(Math.Abs) / 100 : 0; // Int8 is lossy: within 1% of the scale
                Assert.All(Enumerable.Range(0, 8), j => Assert.InRange(row[j], expected[j] - tolerance, expected[j] + tolerance));
            }
        }
    }

    [Fact]
    public async Task GetManyAsync_with_prefetch_serves_every_user_its_own_vector_across_prefetch_groups()
    {
        using var f = new CacheFixture(dimensions: 8);
        var users = Enumerable.Range(0, 100).Select(i => (long)(i * 7 % 61)).ToArray(); // repeats, and more than 6 groups of 16
        await f.Cache.GetManyAsync(CacheFixture.Model, users, new float[users.Length * 8], new EmbeddingResult[users.Length]);
        var vectors = new float[users.Length * 8];
        var results = new EmbeddingResult[users.Length];
        await f.Cache.GetManyAsync(CacheFixture.Model, users, vectors, results);
        for (int i = 0; i < users.Length; i++)
        {
            Assert.Equal(EmbeddingSource.Direct, results[i].Source);
            Assert.True(TestTower.BelongsTo(vectors.AsSpan(i * 8, 8), users[i]));
        }
    }
}
