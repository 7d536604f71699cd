using ERCache.Diagnostics;
using ERCache.Storage;
using ERCache.Tests.Infrastructure;
using ERCache.Tiers;
using ERCache.Tiers.Eviction;

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
        var candidates = new int[EmbeddingTier.PrefetchBatch];
        tier.Prefetch(users, candidates);
        tier.Prefetch([], candidates);
        tier.Prefetch(users.AsSpan(0, 1), candidates);
        foreach (long user in users)
        {
            tier.PrefetchWrite(user); // a full tier: the victim's slot, its key's bucket and the oldest entry's header too
        }

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
    public void Prefetching_a_hit_changes_no_order_no_bit_and_takes_any_slot()
    {
        var lru = new LruOrder(8);
        var sieve = new SieveOrder(8);
        var fifo = new FifoOrder(8);
        for (int slot = 0; slot < 8; slot++)
        {
            lru.OnInsert(slot);
            sieve.OnInsert(slot);
            fifo.OnInsert(slot);
        }

        sieve.RecordHit(3);
        foreach (int slot in new[] { -1, 0, 3, 7, 8, int.MaxValue, int.MinValue })
        {
            lru.PrefetchHit(slot);
            sieve.PrefetchHit(slot);
            fifo.PrefetchHit(slot);
        }

        lru.DrainHits();
        Assert.Equal(Enumerable.Range(0, 8), lru.Order.FromHead()); // no hit recorded, none applied
        Assert.Equal(Enumerable.Range(0, 8), sieve.Order.FromHead());
        Assert.Equal(Enumerable.Range(0, 8), fifo.Order.FromHead());
        Assert.Equal(Enumerable.Range(0, 8).Select(s => s == 3), Enumerable.Range(0, 8).Select(sieve.IsVisited));
    }

    [Fact]
    public void The_victim_hint_is_the_next_victim_and_reading_it_changes_nothing()
    {
        var lru = new LruOrder(8);
        var sieve = new SieveOrder(8);
        var fifo = new FifoOrder(8);
        Assert.Equal((-1, -1, -1), (lru.VictimHint, sieve.VictimHint, fifo.VictimHint)); // empty
        for (int slot = 0; slot < 8; slot++)
        {
            lru.OnInsert(slot);
            sieve.OnInsert(slot);
            fifo.OnInsert(slot);
        }

        lru.OnUpdate(0); // slot 1 is now the least recently used
        sieve.RecordHit(0); // visited: the hand passes it, but only when it really evicts
        Assert.Equal((1, 0, 0), (lru.VictimHint, sieve.VictimHint, fifo.VictimHint));
        Assert.True(sieve.IsVisited(0)); // the hint cleared no bit
        Assert.Equal((1, 1, 0), (lru.SelectVictim(), sieve.SelectVictim(), fifo.SelectVictim()));
    }

    [Theory]
    [InlineData("Lru")]
    [InlineData("Sieve")]
    [InlineData("Fifo")]
    public void A_write_after_its_prefetch_evicts_what_it_would_have_evicted_without_it(string eviction)
    {
        using var metrics = new ERCacheMetrics(null);
        var prefetched = TierHelper.Create(eviction, capacity: 16, dimensions: 8, metrics);
        var plain = TierHelper.Create(eviction, capacity: 16, dimensions: 8, metrics);
        var row = new float[8];
        foreach (var tier in new[] { prefetched, plain })
        {
            TierHelper.WriteUsers(tier, 0, 16);
            foreach (long hit in new long[] { 0, 1, 2, 5 })
            {
                tier.TryRead(hit, now: 16, ttl: long.MaxValue, row, out _); // LRU moves and SIEVE bits, so victims differ by order
            }
        }

        for (long user = 100; user < 110; user++)
        {
            prefetched.PrefetchWrite(user);
            prefetched.PrefetchWrite(user); // twice, as concurrent misses would
            prefetched.Write(user, TierHelper.Vector(user, 8), writtenAt: user);
            plain.Write(user, TierHelper.Vector(user, 8), writtenAt: user);
            var held = Enumerable.Range(0, 110).Where(u => TierHelper.Contains(plain, u));
            Assert.Equal(held, Enumerable.Range(0, 110).Where(u => TierHelper.Contains(prefetched, u)));
        }

        foreach (long user in Enumerable.Range(0, 110).Where(u => TierHelper.Contains(prefetched, u)))
        {
            Assert.True(prefetched.TryRead(user, now: 110, ttl: long.MaxValue, row, out _));
            Assert.Equal(TierHelper.Vector(user, 8), row);
        }
    }

    [Theory]
    [InlineData("Lru", "Float32")]
    [InlineData("Sieve", "Int8")]
    [InlineData("Fifo", "Float16")]
    [InlineData("MemoryCache", "Float32")]
    public void A_read_from_any_candidate_answers_what_a_plain_read_answers(string eviction, string format)
    {
        const int dims = 8;
        using var metrics = new ERCacheMetrics(null);
        var tier = TierHelper.Create(eviction, capacity: 32, dimensions: dims, metrics, format: format);
        for (long u = 0; u < 32; u++)
        {
            tier.Write(u, TierHelper.Vector(u, dims), writtenAt: u);
        }

        var users = new long[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
        var candidates = new int[EmbeddingTier.PrefetchBatch];
        tier.Prefetch(users, candidates);
        if (eviction != "MemoryCache")
        {
            Assert.All(candidates, c => Assert.NotEqual(EmbeddingTier.NoCandidate, c)); // every user present: a slot each
        }

        // Stale candidates: user 0 removed, its slot taken by user 40; user 1 removed and written again (another slot,
        // newer); user 2 rewritten in place; user 3 removed for good.
        tier.Remove(0);
        tier.Write(40, TierHelper.Vector(40, dims), writtenAt: 40);
        tier.Remove(1);
        tier.Write(41, TierHelper.Vector(41, dims), writtenAt: 41);
        tier.Write(1, TierHelper.Vector(101, dims), writtenAt: 101);
        tier.Write(2, TierHelper.Vector(102, dims), writtenAt: 102);
        tier.Remove(3);

        // Every user read through every candidate, its own, another user's, none, and out-of-date ones.
        var tried = candidates.Append(EmbeddingTier.NoCandidate).Append(-7).ToArray(); // and any negative number
        foreach (long user in new long[] { 0, 1, 2, 3, 4, 15, 31, 40, 41, 99 })
        {
            var expectedRow = new float[dims];
            bool expected = tier.TryRead(user, now: 200, ttl: long.MaxValue, expectedRow, out long expectedWrittenAt);
            foreach (int candidate in tried)
            {
                var row = new float[dims];
                bool found = tier.TryReadFrom(candidate, user, now: 200, ttl: long.MaxValue, row, out long writtenAt);
                Assert.True(expected == found, $"user {user}, candidate {candidate}: {found}, a plain read {expected}");
                if (found)
                {
                    Assert.Equal(expectedWrittenAt, writtenAt);
                    Assert.Equal(expectedRow, row);
                }
            }

            // An entry too old for the TTL is a miss through the candidate the prefetch found for it too.
            if (expected)
            {
                int own = user < users.Length ? candidates[user] : EmbeddingTier.NoCandidate;
                Assert.False(tier.TryReadFrom(own, user, now: 200, ttl: 200 - expectedWrittenAt, new float[dims], out _));
            }
        }

        Assert.False(tier.TryReadFrom(candidates[0], 0, now: 200, ttl: long.MaxValue, new float[dims], out _)); // removed
        Assert.False(tier.TryReadFrom(candidates[3], 3, now: 200, ttl: long.MaxValue, new float[dims], out _)); // removed
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

    [Theory]
    [InlineData(1)]
    [InlineData(44)] // a slot of exactly one line
    [InlineData(64)]
    [InlineData(1024)] // 256 floats: a slot of 1,044 bytes, so most slots start inside a line
    [InlineData(1030)]
    public void Prefetching_a_slot_reads_only_its_own_slab_and_writes_nothing(int rowBytes)
    {
        const int slots = 5;
        var slab = SlotPage.AllocateSlab(slots, rowBytes, hugePages: false, out _);
        var page = new SlotPage(slab, rowBytes, SlotPage.StrideOf(rowBytes));

        // Every slot, the last one ending at the slab's end, and slots past it (a candidate is never past it, but a hint
        // must not throw if one were); the first lines only, and the whole slot.
        for (int slot = 0; slot < slots + 2; slot++)
        {
            page.PrefetchSlot(slot, lines: 4);
            page.PrefetchWholeSlot(slot);
        }

        Assert.All(slab, b => Assert.Equal(0, b));
    }

    [Fact]
    public void Tiers_from_32_MB_prefetch_whole_slots_and_a_batch_from_one_reads_what_a_plain_read_does()
    {
        const int dims = 256; // Float32: 1,044-byte slots
        long threshold = SlabTier<LruOrder, Float32Codec>.MinWholeSlotPrefetchTierBytes;
        int largest = (int)((threshold - 1) / SlotPage.StrideOf(dims * sizeof(float)));
        using var metrics = new ERCacheMetrics(null);
        var below = (SlabTier<LruOrder, Float32Codec>)TierHelper.Create("Lru", capacity: largest, dims, metrics, hugePages: false);
        var large = (SlabTier<LruOrder, Float32Codec>)TierHelper.Create("Lru", capacity: largest + 1, dims, metrics, hugePages: false);
        Assert.False(below.PrefetchesWholeSlots);
        Assert.True(large.PrefetchesWholeSlots);

        TierHelper.WriteUsers(large, 0, 64);
        large.Remove(5);
        // 0, 4, …, 60, with 4 replaced by a removed user and 60 by one never written.
        var users = Enumerable.Range(0, EmbeddingTier.PrefetchBatch).Select(i => (long)i * 4).ToArray();
        users[1] = 5;
        users[^1] = 64;
        var candidates = new int[EmbeddingTier.PrefetchBatch];
        large.Prefetch(users, candidates);
        for (int i = 0; i < users.Length; i++)
        {
            var row = new float[dims];
            bool found = large.TryReadFrom(candidates[i], users[i], now: 100, ttl: long.MaxValue, row, out long writtenAt);
            Assert.Equal(users[i] is < 64 and not 5, found);
            if (found)
            {
                Assert.Equal(users[i], writtenAt);
                Assert.Equal(TierHelper.Vector(users[i], dims), row);
            }
        }
    }
}
