using ERCache.Diagnostics;
using ERCache.Tests.Infrastructure;
using ERCache.Tiers;
using ERCache.Tiers.Eviction;
using ERCache.Tiers.Snapshots;

namespace ERCache.Tests;

/// <summary>
/// A snapshot keeps its tier's order across a restart: it is written newest first, and each restored entry goes where
/// the tier's next victim is. So the tier evicts (and reclaims as expired) the oldest restored entries first, as it
/// would have before the restart; a tier smaller than its snapshot, or a load cut short, keeps the newest.
/// </summary>
public sealed class RestoreOrderTests : IDisposable
{
    private const int Dimensions = 4;
    private readonly ERCacheMetrics _metrics = new(null);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"ercache-restore-order-{Guid.NewGuid():N}");

    public void Dispose()
    {
        _metrics.Dispose();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    public static TheoryData<string> Evictions() => ["Lru", "Fifo", "Sieve"];

    [Theory]
    [MemberData(nameof(Evictions))]
    public void A_tier_lists_its_entries_newest_first_whatever_their_slots(string eviction)
    {
        var tier = TierHelper.Create(eviction, capacity: 16, Dimensions, _metrics);
        long[] stamps = [50, 10, 90, 30, 70, 20];
        foreach (long stamp in stamps)
        {
            tier.Write(stamp, TierHelper.Vector(stamp, Dimensions), writtenAt: stamp); // slot order is write order
        }

        tier.Write(10, TierHelper.Vector(10, Dimensions), writtenAt: 95); // a rewrite keeps its slot, with a new stamp

        var visited = new List<(long User, long WrittenAt)>();
        tier.ForEachEntryNewestFirst((user, writtenAt, row) =>
        {
            Assert.Equal(Dimensions * sizeof(float), row.Length);
            visited.Add((user, writtenAt));
        });

        Assert.Equal([(10, 95), (90, 90), (70, 70), (50, 50), (30, 30), (20, 20)], visited);
    }

    [Theory]
    [MemberData(nameof(Evictions))]
    public void Restored_newest_first_the_tier_evicts_the_oldest_restored_entries_first(string eviction)
    {
        var tier = TierHelper.Create(eviction, capacity: 16, Dimensions, _metrics);
        for (long stamp = 100; stamp >= 10; stamp -= 10) // users 100, 90, ..., 10, as a snapshot lists them
        {
            Assert.Equal(RestoreResult.Restored, Restore(tier, stamp));
        }

        TierHelper.WriteUsers(tier, 1_000, 1_006); // requests meanwhile: full at 16
        Assert.Equal(16, tier.Count);

        TierHelper.WriteUsers(tier, 2_000, 2_003); // three more evict the three oldest, 10, 20 and 30
        long[] restored = [.. Enumerable.Range(1, 10).Select(i => i * 10L)];
        Assert.Equal([40L, 50, 60, 70, 80, 90, 100], restored.Where(u => TierHelper.Contains(tier, u)));
        TierHelper.AssertEveryUserReadsItsOwnVector(tier, 1_006, from: 1_000);
    }

    [Fact]
    public void A_restored_entry_is_not_taken_for_a_recent_one_so_an_lru_hit_on_it_keeps_it()
    {
        var tier = TierHelper.Create("Lru", capacity: 16, Dimensions, _metrics);
        for (long stamp = 100; stamp >= 10; stamp -= 10)
        {
            Restore(tier, stamp);
        }

        Assert.True(tier.TryRead(10, now: 100, ttl: long.MaxValue, new float[Dimensions], out _)); // the oldest, hit
        TierHelper.WriteUsers(tier, 1_000, 1_009); // full at 16 (the first write applied the hit), then two evictions

        Assert.True(TierHelper.Contains(tier, 10)); // promoted by its hit
        Assert.False(TierHelper.Contains(tier, 20));
        Assert.False(TierHelper.Contains(tier, 30));
    }

    [Theory]
    [MemberData(nameof(Evictions))]
    public void A_full_tier_keeps_what_it_holds_and_a_removal_makes_room(string eviction)
    {
        var tier = TierHelper.Create(eviction, capacity: 4, Dimensions, _metrics);
        tier.Write(1_000, TierHelper.Vector(1_000, Dimensions), writtenAt: 1_000); // a request's, newer than the snapshot
        Assert.Equal(RestoreResult.Restored, Restore(tier, 160));
        Assert.Equal(RestoreResult.Restored, Restore(tier, 150));
        Assert.Equal(RestoreResult.Restored, Restore(tier, 140)); // full now

        Assert.Equal(RestoreResult.TierFull, Restore(tier, 130)); // nothing is evicted for an older entry
        Assert.True(tier.Remove(160));
        Assert.Equal(RestoreResult.Restored, Restore(tier, 120)); // the removed user's slot is free

        Assert.Equal(0, tier.GetStatistics().Evictions);
        tier.Write(2_000, TierHelper.Vector(2_000, Dimensions), writtenAt: 2_000); // a request's write evicts the oldest

        // Read after the writes: a read is a hit, which would move an LRU entry.
        Assert.Equal([140L, 150, 1_000, 2_000], new long[] { 120, 130, 140, 150, 160, 1_000, 2_000 }.Where(u => TierHelper.Contains(tier, u)));
    }

    [Theory]
    [MemberData(nameof(Evictions))]
    public void A_snapshot_file_restored_into_a_smaller_tier_keeps_its_newest_entries_in_order(string eviction)
    {
        var first = TierHelper.Create(eviction, capacity: 64, Dimensions, _metrics);
        var stamps = Enumerable.Range(1, 40).Select(i => (long)i).OrderBy(s => (s * 17) % 41).ToArray(); // slots out of time order
        foreach (long stamp in stamps)
        {
            first.Write(stamp, TierHelper.Vector(stamp, Dimensions), writtenAt: stamp);
        }

        string path = Path.Combine(_directory, "m.direct.ercache");
        Directory.CreateDirectory(_directory);
        var identity = new SnapshotIdentity("m", "v1", Dimensions, StorageFormat.Float32, TierKind.Direct);
        TierSnapshotFile.Write(first, identity, path, nowUnixMs: 1_000, at => at, CancellationToken.None);

        var inFile = new List<long>();
        var next = TierHelper.Create(eviction, capacity: 8, Dimensions, _metrics);
        var results = new List<RestoreResult>();
        Assert.Null(TierSnapshotFile.Load(path, identity, (user, writtenAt, row) =>
        {
            inFile.Add(writtenAt);
            results.Add(Restore(next, user));
        }, CancellationToken.None));

        Assert.Equal(stamps.OrderDescending(), inFile);
        Assert.Equal(8, results.Count(r => r == RestoreResult.Restored));
        Assert.Equal(32, results.Count(r => r == RestoreResult.TierFull));
        TierHelper.AssertEveryUserReadsItsOwnVector(next, 41, from: 33); // the eight newest, each with its own vector

        TierHelper.WriteUsers(next, 1_000, 1_002); // and the oldest of them go first
        Assert.False(TierHelper.Contains(next, 33));
        Assert.False(TierHelper.Contains(next, 34));
        TierHelper.AssertEveryUserReadsItsOwnVector(next, 41, from: 35);
    }

    [Fact]
    public void A_slot_list_adds_at_the_head_as_it_adds_at_the_tail()
    {
        var list = new SlotList(capacity: 8);
        list.AddFirst(3);
        list.AddLast(5);
        list.AddFirst(1);
        list.Remove(3);
        list.AddFirst(7);

        Assert.Equal([7, 1, 5], list.FromHead());
        Assert.Equal((7, 5, 3), (list.Head, list.Tail, list.Count));
        Assert.Equal(1, list.Next(7));
        Assert.True(list.Contains(7) && !list.Contains(3));
    }

    /// <summary>Restores user <paramref name="user"/> with its own vector, stamped with its id.</summary>
    private static RestoreResult Restore(EmbeddingTier tier, long user, long ttl = long.MaxValue) =>
        tier.Restore(user, TierHelper.Vector(user, Dimensions), writtenAt: user, ttl);
}
