using ERCache.Diagnostics;
using ERCache.Tests.Infrastructure;
using ERCache.Tiers;

namespace ERCache.Tests;

public sealed class EvictionTests
{
    [Fact]
    public void Lru_evicts_the_least_recently_used_counting_reads_and_writes()
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create("Lru", 3, 4, metrics);
        foreach (long u in new long[] { 1, 2, 3 })
        {
            tier.Write(u, TierHelper.Vector(u, 4), 0);
        }

        Assert.True(TierHelper.Contains(tier, 1));        // order now 2, 3, 1
        tier.Write(4, TierHelper.Vector(4, 4), 0);        // evicts 2 -> 3, 1, 4
        Assert.False(TierHelper.Contains(tier, 2));
        Assert.True(TierHelper.Contains(tier, 3));        // 1, 4, 3
        tier.Write(1, TierHelper.Vector(1, 4), 0);        // rewrite: 4, 3, 1
        tier.Write(5, TierHelper.Vector(5, 4), 0);        // evicts 4 -> 3, 1, 5

        Assert.Equal([false, true, true, false, true], new long[] { 2, 3, 1, 4, 5 }.Select(u => TierHelper.Contains(tier, u)));
        Assert.Equal(3, tier.Count);
        Assert.Equal(2, tier.Evictions);
    }

    [Fact]
    public void Fifo_evicts_the_least_recently_written_and_ignores_reads()
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create("Fifo", 3, 4, metrics);
        foreach (long u in new long[] { 1, 2, 3 })
        {
            tier.Write(u, TierHelper.Vector(u, 4), 0);
        }

        Assert.True(TierHelper.Contains(tier, 1));        // a read does not reorder: 1, 2, 3
        tier.Write(4, TierHelper.Vector(4, 4), 0);        // evicts 1 -> 2, 3, 4
        Assert.False(TierHelper.Contains(tier, 1));
        tier.Write(2, TierHelper.Vector(2, 4), 0);        // a rewrite restarts its TTL: 3, 4, 2
        tier.Write(5, TierHelper.Vector(5, 4), 0);        // evicts 3 -> 4, 2, 5

        Assert.False(TierHelper.Contains(tier, 3));
        Assert.True(TierHelper.Contains(tier, 4));
        Assert.True(TierHelper.Contains(tier, 2));
        Assert.True(TierHelper.Contains(tier, 5));
        Assert.Equal(3, tier.Count);
        Assert.Equal(2, tier.Evictions);
    }

    [Fact]
    public void Lru_order_is_exact_after_many_single_threaded_reads()
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create("Lru", 4, 2, metrics);
        for (long u = 0; u < 4; u++)
        {
            tier.Write(u, TierHelper.Vector(u, 2), 0);
        }

        // More reads than the hit buffer holds: half-full drains keep the order exact.
        for (int i = 0; i < 1000; i++)
        {
            TierHelper.Contains(tier, i % 3 == 0 ? 1 : (i % 3 == 1 ? 2 : 3));
        }

        tier.Write(9, TierHelper.Vector(9, 2), 0);

        Assert.False(TierHelper.Contains(tier, 0));
        Assert.True(TierHelper.Contains(tier, 1));
    }

    [Theory]
    [InlineData("Lru")]
    [InlineData("Fifo")]
    [InlineData("MemoryCache")]
    public void Every_strategy_keeps_its_tier_at_or_under_capacity(string eviction)
    {
        using var metrics = new ERCacheMetrics(null);
        using var collector = new MetricCollector(metrics.Meter);
        var tier = TierHelper.Create(eviction, 10, 4, metrics);
        for (long u = 0; u < 250; u++)
        {
            tier.Write(u, TierHelper.Vector(u, 4), u);
            Assert.InRange(tier.Count, 1, 10);
            Assert.True(TierHelper.Contains(tier, u)); // the newest write is never the one dropped
        }

        Assert.Equal(250 - tier.Count, tier.Evictions);
        Assert.Equal(tier.Evictions, collector.Sum("ercache.evictions", ("model", "m"), ("tier", "direct")));
    }

    [Fact]
    public void MemoryCache_strategy_compacts_least_recently_accessed_entries_first()
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create("MemoryCache", 20, 4, metrics);
        for (long u = 0; u < 20; u++)
        {
            tier.Write(u, TierHelper.Vector(u, 4), 0);
        }

        // MemoryCache stamps accesses with its own wall clock: this read is the latest access of all.
        Assert.True(TierHelper.Contains(tier, 0));
        tier.Write(100, TierHelper.Vector(100, 4), 0); // compacts 1 entry (5% of 20): the least recently accessed

        Assert.True(TierHelper.Contains(tier, 0));
        Assert.True(TierHelper.Contains(tier, 100));
        Assert.Equal(20, tier.Count);
        Assert.Equal(1, tier.Evictions);
    }

    [Theory]
    [InlineData("Lru")]
    [InlineData("Fifo")]
    [InlineData("MemoryCache")]
    public void Rewriting_a_key_replaces_its_vector_without_eviction(string eviction)
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create(eviction, 2, 4, metrics);
        tier.Write(1, [1, 1, 1, 1], 10);
        tier.Write(2, [2, 2, 2, 2], 10);
        tier.Write(1, [3, 3, 3, 3], 20);
        var v = new float[4];

        Assert.True(tier.TryRead(1, 25, 100, v, out long writtenAt));
        Assert.Equal([3f, 3, 3, 3], v);
        Assert.Equal(20, writtenAt);
        Assert.Equal(0, tier.Evictions);
    }

    [Theory]
    [InlineData("Lru")]
    [InlineData("Fifo")]
    [InlineData("MemoryCache")]
    public void A_read_respects_the_ttl_boundary(string eviction)
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create(eviction, 4, 4, metrics);
        tier.Write(1, TierHelper.Vector(1, 4), 100);

        Assert.True(tier.TryRead(1, 149, 50, new float[4], out _));
        Assert.False(tier.TryRead(1, 150, 50, new float[4], out _));
    }

    [Fact]
    public void A_slab_tier_allocates_its_pages_lazily()
    {
        using var metrics = new ERCacheMetrics(null);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var tier = TierHelper.Create("Lru", 1_000_000, 256, metrics); // would be ~1 GB if allocated up front
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        tier.Write(1, TierHelper.Vector(1, 256), 0);

        Assert.InRange(allocated, 0, 1 << 20);
        Assert.True(TierHelper.Contains(tier, 1));
    }
}
