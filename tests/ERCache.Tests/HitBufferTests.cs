using ERCache.Diagnostics;
using ERCache.Storage;
using ERCache.Tests.Infrastructure;
using ERCache.Tiers;
using ERCache.Tiers.Eviction;

namespace ERCache.Tests;

/// <summary>The LRU's buffered hits drained with prefetching (a large tier) change nothing but when memory is read: the
/// same hits reach the order, in the same order, and the order ends up the same.</summary>
public sealed class HitBufferTests
{
    [Fact]
    public void A_prefetching_drain_applies_the_same_hits_in_the_same_order_each_group_requested_first()
    {
        var plain = new HitBuffer();
        var prefetching = new HitBuffer();
        int hits = (3 * HitBuffer.DrainGroup) + 5; // whole groups and a part of one, fewer than a ring holds
        for (int i = 0; i < hits; i++)
        {
            int slot = (i * 7) % 50;
            plain.Add(slot);
            prefetching.Add(slot);
        }

        var applied = new RecordingSink();
        plain.Drain(ref applied);
        var requested = new RecordingSink();
        prefetching.DrainPrefetching(ref requested);

        var expected = applied.Events.Select(e => e.Slot).ToArray();
        Assert.Equal(hits, expected.Length);
        Assert.All(applied.Events, e => Assert.Equal('h', e.Kind)); // the plain drain requests nothing
        Assert.Equal(expected, requested.Events.Where(e => e.Kind == 'h').Select(e => e.Slot));

        // Each group: its slots' own state, then their neighbours', then the moves, in the hits' order each time.
        var events = requested.Events;
        int at = 0;
        for (int start = 0; start < hits; start += HitBuffer.DrainGroup)
        {
            var group = expected.Skip(start).Take(HitBuffer.DrainGroup).ToArray();
            foreach (char kind in "pnh")
            {
                Assert.Equal(group.Select(s => (kind, s)), events.Skip(at).Take(group.Length));
                at += group.Length;
            }
        }

        Assert.Equal(events.Count, at);

        var again = new RecordingSink();
        plain.Drain(ref again);
        prefetching.DrainPrefetching(ref again);
        Assert.Empty(again.Events); // each hit is drained once
    }

    [Fact]
    public void Lru_orders_drained_with_and_without_prefetching_stay_identical()
    {
        const int capacity = 64;
        var plain = new LruOrder(capacity, prefetchDrains: false);
        var prefetching = new LruOrder(capacity, prefetchDrains: true);
        for (int slot = 0; slot < capacity; slot++)
        {
            plain.OnInsert(slot);
            prefetching.OnInsert(slot);
        }

        var rng = new Random(20261207);
        int drains = 0, moved = 0;
        var before = plain.Order.FromHead().ToArray();
        for (int step = 0; step < 5_000; step++)
        {
            int action = rng.Next(10);
            int slot = rng.Next(capacity);
            if (action < 6)
            {
                plain.RecordHit(slot); // both orders see the same hits (RecentMoves decides the same for both)
                prefetching.RecordHit(slot);
            }
            else if (action == 6)
            {
                plain.OnUpdate(slot);
                prefetching.OnUpdate(slot);
            }
            else if (action == 7)
            {
                // An eviction: drained first, as the tier does before choosing, then the victim's slot reused.
                plain.DrainHits();
                prefetching.DrainHits();
                int victim = plain.SelectVictim();
                Assert.Equal(victim, prefetching.SelectVictim());
                plain.Remove(victim);
                prefetching.Remove(victim);
                plain.OnInsert(victim);
                prefetching.OnInsert(victim);
            }
            else
            {
                plain.DrainHits();
                prefetching.DrainHits();
                drains++;
                var order = plain.Order.FromHead().ToArray();
                Assert.Equal(order, prefetching.Order.FromHead());
                moved += order.SequenceEqual(before) ? 0 : 1;
                before = order;
            }
        }

        Assert.True(plain.PrefetchesDrains is false && prefetching.PrefetchesDrains);
        Assert.True(drains > 100 && moved > 50, $"{drains} drains, {moved} changed the order"); // the hits did move entries
    }

    [Theory]
    [InlineData(40_000, true)] // 40,000 slots of 1,044 bytes: 41.8 MB, read mostly from memory
    [InlineData(20_000, false)] // 20.9 MB: below MinDrainPrefetchTierBytes
    public void An_lru_tier_drains_with_prefetching_only_when_it_is_read_from_memory(int capacity, bool prefetches)
    {
        using var metrics = new ERCacheMetrics(null);
        using var tier = (SlabTier<LruOrder, Float32Codec>)TierHelper.Create("Lru", capacity, dimensions: 256, metrics, hugePages: false);
        Assert.Equal(prefetches, (long)capacity * SlotPage.StrideOf(256 * sizeof(float)) >= SlabTier<LruOrder, Float32Codec>.MinDrainPrefetchTierBytes);
        Assert.Equal(prefetches, tier.EvictionPolicy.PrefetchesDrains);
    }

    /// <summary>Records what a drain asks for, in order: 'p' its own state, 'n' its neighbours', 'h' the hit.</summary>
    private struct RecordingSink() : IHitSink
    {
        public List<(char Kind, int Slot)> Events { get; } = [];

        public readonly void Prefetch(int slot) => Events.Add(('p', slot));

        public readonly void PrefetchNeighbours(int slot) => Events.Add(('n', slot));

        public readonly void Hit(int slot) => Events.Add(('h', slot));
    }
}
