using ERCache.Storage;
using ERCache.Tiers.Eviction;
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
    public void Lru_does_not_record_a_read_of_an_entry_still_among_the_newest_quarter()
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create("Lru", 8, 4, metrics); // a window of 2 moves
        for (long u = 1; u <= 8; u++)
        {
            tier.Write(u, TierHelper.Vector(u, 4), 0);
        }

        Assert.True(TierHelper.Contains(tier, 1));   // 8 moves old: promoted -> 2..8, 1
        Assert.True(TierHelper.Contains(tier, 8));   // 1 move old (only 1 moved since): not recorded, stays before 1
        for (long u = 9; u <= 15; u++)
        {
            tier.Write(u, TierHelper.Vector(u, 4), 0); // evicts 2..8 (exact LRU would evict 1 before 8)
        }

        Assert.True(TierHelper.Contains(tier, 1));
        Assert.False(TierHelper.Contains(tier, 8));
        Assert.Equal(7, tier.Evictions);
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
    [InlineData("Sieve")]
    [InlineData("MemoryCache")]
    public void Every_strategy_keeps_its_tier_at_or_under_capacity(string eviction)
    {
        using var metrics = new ERCacheMetrics(null);
        using var collector = new CacheMetrics(metrics.Meter);
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
    [InlineData("Sieve")]
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
    [InlineData("Sieve")]
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
        var tier = TierHelper.Create("Lru", 1_000_000, 256, metrics); // the slabs would be ~1 GB if allocated up front
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        tier.Write(1, TierHelper.Vector(1, 256), 0);

        // Only the index and the eviction order are allocated up front: 4/3 of a 4-byte bucket and its 1-byte distance
        // per entry of capacity (6.7 MB here), and LRU's 20 bytes per entry (20 MB).
        Assert.InRange(allocated, 26_666_670, 26_666_670 + (1 << 20));
        Assert.True(TierHelper.Contains(tier, 1));
    }

    [Theory]
    [InlineData("Lru")]
    [InlineData("Fifo")]
    [InlineData("Sieve")]
    public void The_eviction_order_is_allocated_at_capacity_and_does_not_grow_as_the_tier_fills(string eviction)
    {
        // Growing it under the write lock (a copy of megabytes at each doubling) stalled single writes for milliseconds.
        const int capacity = 70_000;
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create(eviction, capacity, 4, metrics);
        int perEntry = TierSizing.PolicyBytes(Enum.Parse<EvictionStrategy>(eviction));
        long orderBytes = tier.GetStatistics().AllocatedBytes - IndexBytes(capacity);
        Assert.InRange(orderBytes, (long)capacity * perEntry, ((long)capacity * perEntry) + HitBuffer.AllocatedBytes + 1024); // + the slab list

        long atStart = tier.GetStatistics().AllocatedBytes;
        TierHelper.WriteUsers(tier, 0, capacity + 100); // full, then evicting
        long slabs = tier.GetStatistics().AllocatedBytes - atStart;

        Assert.Equal(capacity, tier.Count);
        Assert.InRange(slabs, (long)capacity * 4 * sizeof(float), (long)capacity * 64); // only the slabs grew
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, capacity + 100, from: 100);
    }

    [Fact]
    public void A_slot_list_at_capacity_holds_only_the_slots_added_and_not_removed()
    {
        var list = new SlotList(capacity: 100);
        list.AddLast(0);
        list.AddLast(1);
        list.AddLast(2);
        list.Remove(1);

        Assert.Equal([0, 2], list.FromHead());
        Assert.True(list.Contains(0) && list.Contains(2));
        Assert.False(list.Contains(1)); // removed
        Assert.False(list.Contains(50)); // never added: its links are still the zeros it was allocated with
        Assert.Equal(100 * 2 * sizeof(int), list.AllocatedBytes);
    }

    private static long IndexBytes(int capacity) => new SlotIndex(capacity, _ => 0, seed: 0).AllocatedBytes;
}

public sealed class SieveAndExpiryTests
{
    private static void Write(EmbeddingTier tier, long user, long at, long ttl = long.MaxValue) =>
        tier.Write(user, TierHelper.Vector(user, 4), at, ttl);

    private static long[] Held(EmbeddingTier tier, params long[] users) => users.Where(u => TierHelper.Contains(tier, u)).ToArray();

    [Fact]
    public void Sieve_evicts_the_first_unvisited_entry_from_the_oldest_and_leaves_visited_ones_in_place()
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = (SlabTier<SieveOrder, ERCache.Storage.Float32Codec>)TierHelper.Create("Sieve", 3, 4, metrics);
        Write(tier, 1, 0);
        Write(tier, 2, 0);
        Write(tier, 3, 0);
        Assert.True(TierHelper.Contains(tier, 1));  // visits 1

        Write(tier, 4, 0);                          // hand: 1 visited -> cleared, 2 not -> evicted; hand moves to 3
        Assert.Equal([1, 3, 4], Order(tier));       // survivors keep their place (read without visiting)
        Assert.False(tier.EvictionPolicy.IsVisited(SlotOf(tier, 1)));

        Assert.True(TierHelper.Contains(tier, 3));  // visits 3 (the hand is on it)
        Write(tier, 5, 0);                          // hand: 3 visited -> cleared, 4 not -> evicted
        Assert.Equal([1, 3, 5], Order(tier));

        Write(tier, 6, 0);                          // hand ran off the newest end: wraps to the oldest, 1, unvisited
        Assert.Equal([3, 5, 6], Order(tier));
        Assert.Equal(new long[] { 3, 5, 6 }, Held(tier, 1, 2, 3, 4, 5, 6)); // and the index agrees
        Assert.Equal(3, tier.Evictions);
        Assert.Equal(0, tier.ExpiredReclaimed);
    }

    [Theory]
    [InlineData("Sieve", true)]
    [InlineData("Lru", false)]
    public void A_scan_of_one_off_users_does_not_flush_returning_users_from_sieve(string eviction, bool survives)
    {
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create(eviction, 4, 4, metrics);
        Write(tier, 1, 0);
        Write(tier, 2, 0);
        Assert.True(TierHelper.Contains(tier, 1));
        Assert.True(TierHelper.Contains(tier, 2));
        for (long u = 100; u < 120; u++)
        {
            Write(tier, u, 0); // twenty users seen once
        }

        Assert.Equal(survives, TierHelper.Contains(tier, 1) && TierHelper.Contains(tier, 2));
    }

    [Theory]
    [InlineData("Lru")]
    [InlineData("Fifo")]
    [InlineData("Sieve")]
    public void An_expired_entry_is_reclaimed_before_any_live_one(string eviction)
    {
        using var metrics = new ERCacheMetrics(null);
        using var collector = new CacheMetrics(metrics.Meter);
        const long ttl = 100;
        var tier = TierHelper.Create(eviction, 3, 4, metrics);
        Write(tier, 1, 0, ttl);
        Write(tier, 2, 50, ttl);
        Write(tier, 3, 60, ttl);
        Assert.True(tier.TryRead(1, 90, ttl, new float[4], out _)); // 1 is now the most recently used (and visited)

        Write(tier, 4, 120, ttl); // 1 is 120 old: expired, so it goes, whatever LRU or SIEVE would choose
        Assert.Equal(new long[] { 2, 3, 4 }, Held(tier, 1, 2, 3, 4));
        Assert.Equal(1, tier.ExpiredReclaimed);

        Write(tier, 5, 130, ttl); // nothing expired (2 is 80 old): a live victim, 2 for every strategy here
        Assert.Equal(new long[] { 3, 4, 5 }, Held(tier, 2, 3, 4, 5));
        Assert.Equal(2, tier.Evictions);
        Assert.Equal(1, tier.ExpiredReclaimed);
        Assert.Equal(1, collector.Sum("ercache.evictions", ("tier", "direct"), ("reason", "expired")));
        Assert.Equal(1, collector.Sum("ercache.evictions", ("tier", "direct"), ("reason", "capacity")));
    }

    [Theory]
    [InlineData("Lru", "Float32")]
    [InlineData("Fifo", "Float16")]
    [InlineData("Sieve", "Int8")]
    public void MaxBytes_lowers_the_capacity_so_that_a_full_tier_fits(string eviction, string format)
    {
        const int dims = 256;
        const long maxBytes = 1 << 20;
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create(eviction, 100_000, dims, metrics, format: format, maxBytes: maxBytes);
        int rowBytes = StorageFormats.RowBytes(Enum.Parse<StorageFormat>(format), dims);
        Assert.InRange(tier.Capacity, (maxBytes / (rowBytes + 64)) - 1, maxBytes / rowBytes);

        for (long u = 0; u < tier.Capacity * 3L; u++)
        {
            tier.Write(u, TierHelper.Vector(u, dims), 0);
        }

        Assert.Equal(tier.Capacity, tier.Count);
        Assert.InRange(tier.AllocatedBytes, tier.Capacity * (long)rowBytes, maxBytes);
        Assert.InRange(tier.BytesPerEntry, rowBytes + 20, rowBytes + 20 + 7 + 20 + 3); // header, index, eviction order, padding
    }

    [Theory]
    [InlineData("Fifo", 8 + 6.67)]
    [InlineData("Sieve", 9 + 6.67)]
    [InlineData("Lru", 20 + 6.67)]
    public void Bytes_per_entry_is_the_row_plus_a_20_byte_header_the_index_and_the_policy(string eviction, double bookkeeping)
    {
        using var metrics = new ERCacheMetrics(null);
        foreach (var (format, rowBytes) in new[] { ("Float32", 1024), ("Float16", 512), ("Int8", 264) })
        {
            var tier = TierHelper.Create(eviction, 1_000_000, 256, metrics, format: format);
            Assert.InRange(tier.BytesPerEntry - rowBytes, 20 + bookkeeping - 0.01, 20 + bookkeeping);
        }
    }

    [Fact]
    public async Task A_tier_reports_its_statistics_through_the_public_api()
    {
        using var f = new CacheFixture(m => { m.Direct.Eviction = EvictionStrategy.Sieve; m.Failover.Format = StorageFormat.Int8; m.Failover.MaxBytes = 32 * 1024; });
        await f.Cache.GetAsync(CacheFixture.Model, 1, new float[f.Dimensions]);

        var direct = f.Cache.GetTierStatistics(CacheFixture.Model, TierKind.Direct)!.Value;
        var failover = f.Cache.GetTierStatistics(CacheFixture.Model, TierKind.Failover)!.Value;
        Assert.Equal((TierKind.Direct, EvictionStrategy.Sieve, StorageFormat.Float32, 1, 1000), (direct.Kind, direct.Eviction, direct.Format, direct.Count, direct.Capacity));
        Assert.Equal((StorageFormat.Int8, 1), (failover.Format, failover.Count));
        Assert.True(failover.Capacity < 1000 && failover.AllocatedBytes <= 32 * 1024, $"{failover}");
        Assert.True(direct.BytesPerEntry > 4 * sizeof(float));
    }

    private static int SlotOf(SlabTier<SieveOrder, ERCache.Storage.Float32Codec> tier, long user) =>
        tier.EvictionPolicy.Order.FromHead().Single(s => tier.KeyAt(s) == user);

    private static long[] Order(SlabTier<SieveOrder, ERCache.Storage.Float32Codec> tier) =>
        tier.EvictionPolicy.Order.FromHead().Select(tier.KeyAt).ToArray();
}
