using System.Collections.Concurrent;
using ERCache.Inference;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>Another host removes users from two threads while a restarted host prefetches its snapshots' users from the
/// store, each step's values held back after their read until more removals have landed (so removals fall between a
/// step's read and its writes): no removed user is in its tiers afterwards, and every vector it holds is its own
/// user's.</summary>
[Collection(SoakDefinition.Name)]
public sealed class SnapshotPrefetchSoak : IDisposable
{
    private const string Model = "ctr";
    private const int Removers = 2;
    private static readonly int Users = 4 * new RegionalOptions().MaxBatchSize; // four prefetch round trips
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"ercache-prefetch-soak-{Guid.NewGuid():N}");
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 12, 1, 0, 0, 0, TimeSpan.Zero));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task Hammer_removals_during_a_prefetch_leave_no_removed_user_and_only_each_users_own_vector()
    {
        var store = new InMemoryRegionalStore(_clock);
        await using (var before = Host(store, new TestTower { Generation = 1 }, snapshots: true))
        {
            await before.WhenReadyAsync();
            for (long user = 0; user < Users; user++)
            {
                await before.GetAsync(Model, user, new float[4]);
            }

            await before.FlushRegionalWritesAsync();
        } // the graceful stop writes the snapshots

        await using var other = Host(store, new TestTower { Generation = 2 }, snapshots: false);
        await other.WhenReadyAsync();
        var tower = new TestTower { Generation = 3 };
        var removed = new ConcurrentBag<long>();
        int removing = Removers;
        var reads = new ReadsAfterRemovals(store, () => removed.Count, () => Volatile.Read(ref removing) > 0);
        await using var restarted = Host(reads, tower, snapshots: true); // its prefetch starts now, in the background
        CheckedThread.RunAll(Enumerable.Range(0, Removers).Select(r => (Action)(() =>
        {
            Assert.True(reads.FirstRead.Wait(TimeSpan.FromSeconds(10)), "the prefetch did not read the store");
            for (long user = r; user < Users; user += 3 * Removers) // a third of the users, interleaved between the threads
            {
                other.RemoveAsync(Model, user).GetAwaiter().GetResult(); // heard by the restarted host before it returns
                removed.Add(user);
            }

            Interlocked.Decrement(ref removing);
        })));
        await restarted.WhenReadyAsync();
        Assert.True(reads.HeldSteps >= 2, $"only {reads.HeldSteps} prefetch steps overlapped the removals");

        tower.Whole = (batch, _) =>
        {
            for (int i = 0; i < batch.Count; i++)
            {
                batch.Fail(i); // from now on a vector served is one the tiers held
            }

            return ValueTask.CompletedTask;
        };
        var removedSet = removed.ToHashSet();
        Assert.Equal(Enumerable.Range(0, Users).Where(u => u % (3 * Removers) < Removers).Select(u => (long)u).ToHashSet(), removedSet);
        int served = 0;
        for (long user = 0; user < Users; user++)
        {
            var vector = new float[4];
            var result = await restarted.GetAsync(Model, user, vector);
            if (removedSet.Contains(user))
            {
                Assert.False(result.HasVector, $"removed user {user} was served ({result.Source})");
            }
            else if (result.HasVector)
            {
                Assert.True(TestTower.BelongsTo(vector, user), $"user {user} got another user's vector");
                served++;
            }
        }

        Assert.Equal(Users - removedSet.Count, served); // every user left came back, locally or from the store
    }

    /// <summary>The in-memory store, whose reads (the prefetch's: no request runs meanwhile) return their values only
    /// once <see cref="Step"/> more removals have landed, or the removers are done.</summary>
    private sealed class ReadsAfterRemovals(InMemoryRegionalStore inner, Func<int> removed, Func<bool> removing) : WrappedRegionalStore(inner)
    {
        private const int Step = 20;
        private int _heldSteps;

        public ManualResetEventSlim FirstRead { get; } = new();

        /// <summary>Reads held until more removals landed after them.</summary>
        public int HeldSteps => Volatile.Read(ref _heldSteps);

        public override async Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, int valueBytes, CancellationToken cancellationToken)
        {
            var values = await Inner.ReadAsync(field, users, valueBytes, cancellationToken);
            int seen = removed();
            FirstRead.Set();
            var spin = new SpinWait();
            while (removing() && removed() < seen + Step)
            {
                spin.SpinOnce();
            }

            if (removed() >= seen + Step)
            {
                Interlocked.Increment(ref _heldSteps);
            }

            return values;
        }
    }

    private EmbeddingCache Host(IRegionalStore store, TestTower tower, bool snapshots)
    {
        var model = CacheFixture.DefaultModel(4);
        model.Direct.Capacity = model.Failover.Capacity = 2 * Users;
        model.Direct.Ttl = TimeSpan.FromMinutes(10);
        var options = new ERCacheOptions { Models = { [Model] = model } };
        if (snapshots)
        {
            options.Snapshots.Directory = _directory;
        }

        TestThread.LeaveSynchronizationContext();
        return EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { [Model] = tower },
            new EmbeddingCacheServices { TimeProvider = _clock, Dispatcher = InferenceDispatcher.Inline, RegionalStore = store });
    }
}
