using ERCache.Diagnostics;
using ERCache.Storage;
using ERCache.Tests.Infrastructure;
using ERCache.Tiers;
using ERCache.Tiers.Eviction;

namespace ERCache.Tests;

/// <summary>A snapshot's restore writes through <see cref="EmbeddingTier.Restore"/>: the requests' writes waiting for
/// the tier's lock go first, and on huge pages the restore faults in the memory its next writes reach outside the lock,
/// so that the requests' writes do not wait for a load's page faults.</summary>
public sealed class RestoreHandOffTests : IDisposable
{
    private const int Dimensions = 256, Capacity = 40_000; // 41.8 MB of 1 KB rows: huge pages, slabs of 16,384 slots
    private readonly ERCacheMetrics _metrics = new(null);
    private readonly ManualTaskScheduler _scheduler = new(); // slab preparations run only when a test runs them

    public void Dispose() => _metrics.Dispose();

    [Fact]
    public void A_request_write_that_waits_for_the_lock_is_counted_until_it_has_it()
    {
        var tier = NewTier(hugePages: false);
        CheckedThread request;
        using (tier.HoldWriteLock())
        {
            request = CheckedThread.Start(() => TierHelper.WriteUsers(tier, 7, 8));
            AwaitWaitingRequestWrite(tier);
        }

        request.Join();
        Assert.Equal(0, tier.RequestWritesWaiting);
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, 8, from: 7);
    }

    [Fact]
    public void A_restore_lets_a_waiting_request_write_go_first_and_is_only_slowed_when_it_cannot()
    {
        var tier = NewTier(hugePages: false);
        TierHelper.WriteUsers(tier, 0, 1);
        Assert.Equal(RestoreResult.Restored, tier.Restore(1, TierHelper.Vector(1, Dimensions), writtenAt: 1, ttl: long.MaxValue)); // nobody waits
        Assert.Equal(0, tier.RestoreHandOffSpins);

        CheckedThread request;
        using (tier.HoldWriteLock()) // this thread holds the lock (re-entrant), so the waiting write cannot take it
        {
            request = CheckedThread.Start(() => TierHelper.WriteUsers(tier, 7, 8));
            AwaitWaitingRequestWrite(tier);

            // The restore waits its turns for the request, which never gets the lock here, then writes anyway.
            Assert.Equal(RestoreResult.Restored, tier.Restore(2, TierHelper.Vector(2, Dimensions), writtenAt: 2, ttl: long.MaxValue));
            Assert.Equal(SlabTier<LruOrder, Float32Codec>.HandOffSpins, tier.RestoreHandOffSpins);
        }

        request.Join();
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, 3);
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, 8, from: 7);
    }

    [Fact]
    public void A_restore_keeps_what_is_newer_and_what_was_removed_out_as_TryWriteNewer_does()
    {
        var tier = NewTier(hugePages: false);
        TierHelper.WriteUsers(tier, 0, 3);

        Assert.Equal(RestoreResult.Kept, tier.Restore(1, TierHelper.Vector(99, Dimensions), writtenAt: 0, ttl: long.MaxValue)); // holds a newer one
        Assert.Equal(RestoreResult.Kept, tier.Restore(5, TierHelper.Vector(5, Dimensions), writtenAt: 5, ttl: long.MaxValue, removed: u => u == 5));
        Assert.Equal(RestoreResult.Kept, tier.Restore(2, TierHelper.Vector(99, Dimensions), writtenAt: 2, ttl: long.MaxValue)); // the same age: kept out
        Assert.False(TierHelper.Contains(tier, 5));
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, 3);
    }

    [Fact]
    public void On_huge_pages_a_restore_faults_in_the_memory_its_next_writes_reach_outside_the_lock()
    {
        if (!HugePages.Supported)
        {
            return; // ordinary pages: nothing to fault in ahead (the next test)
        }

        var tier = NewTier(hugePages: true);
        Assert.Equal(2, _scheduler.RunAll()); // the first slab is allocated, as a restore at start-up finds it
        TierHelper.WriteUsers(tier, 0, 10); // a request's writes fault nothing in ahead
        Assert.Equal(0, tier.RestoreFaultedInBytes);

        const int Restored = 8_000; // half of the first slab, 8.4 MB of slots
        for (long u = 10; u < Restored; u++)
        {
            Assert.Equal(RestoreResult.Restored, tier.Restore(u, TierHelper.Vector(u, Dimensions), writtenAt: u, ttl: long.MaxValue));
        }

        // Faulted in before each write reached it (10 requests' writes came first, on the first 2 MB), 2–4 MB at a time,
        // whole 2 MB, each byte once: at most 4 MB past the last write's end.
        long reached = (long)Restored * SlotPage.StrideOf(Dimensions * sizeof(float));
        Assert.InRange(tier.RestoreFaultedInBytes, reached, reached + (2L * HugePages.PageBytes));
        Assert.Equal(0, tier.RestoreFaultedInBytes % HugePages.PageBytes);
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, Restored);
    }

    [Fact]
    public void On_ordinary_pages_a_restore_faults_nothing_in_ahead()
    {
        var tier = NewTier(hugePages: false);
        for (long u = 0; u < 5_000; u++)
        {
            Assert.Equal(RestoreResult.Restored, tier.Restore(u, TierHelper.Vector(u, Dimensions), writtenAt: u, ttl: long.MaxValue));
        }

        Assert.Equal(0, tier.RestoreFaultedInBytes);
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, 5_000);
    }

    private SlabTier<LruOrder, Float32Codec> NewTier(bool hugePages) =>
        (SlabTier<LruOrder, Float32Codec>)TierHelper.Create("Lru", Capacity, Dimensions, _metrics, hugePages: hugePages, slabPreparation: _scheduler);

    /// <summary>Waits (on this thread, which holds the lock) until the other thread's write waits for the lock. A bound
    /// of 10 s only keeps a broken build from hanging; the wait ends as soon as that thread gets there.</summary>
    private static void AwaitWaitingRequestWrite(SlabTier<LruOrder, Float32Codec> tier) =>
        Assert.True(SpinWait.SpinUntil(() => tier.RequestWritesWaiting == 1, TimeSpan.FromSeconds(10)), "the request's write did not wait for the lock");
}
