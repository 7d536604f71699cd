using ERCache.Inference;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>A warm restart beside a regional store whose invalidation channel is on (DESIGN §2 rules 10 and 11): the
/// snapshots say which users this host had; their values come from the store, which holds what other hosts removed
/// and pushed while this host was down, never from the snapshots' rows.</summary>
public sealed class SnapshotPrefetchTests : IDisposable
{
    private const string Model = "ctr";
    private const string LocalModel = "local";
    private const int PrefetchedEvent = 43;
    private const int PrefetchSkippedEvent = 44;
    private static readonly DateTimeOffset Epoch = new(2026, 12, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"ercache-prefetch-{Guid.NewGuid():N}");
    private readonly FakeTimeProvider _clock = new(Epoch);
    private readonly FakeLogCollector _logs = new();

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task Users_removed_or_pushed_elsewhere_meanwhile_get_the_stores_answer_and_the_others_are_prefetched_into_both_tiers()
    {
        var store = new InMemoryRegionalStore(_clock);
        await using (var before = Host(store, generation: 1))
        {
            await before.WhenReadyAsync();
            await InferAsync(before, 1, 2, 3); // in both tiers and the store; the graceful stop writes the snapshots
        }

        _clock.Advance(TimeSpan.FromMinutes(1));
        float[] pushed = [3, 99, 5, 6];
        await using (var other = Host(store, generation: 2, snapshots: false))
        {
            await other.WhenReadyAsync();
            await other.RemoveAsync(Model, 2);
            other.SetVector(Model, 3, pushed);
            await other.FlushRegionalWritesAsync();
        }

        _clock.Advance(TimeSpan.FromMinutes(1));
        await using var restarted = Host(store, generation: 3);
        await restarted.WhenReadyAsync();

        Assert.Equal(2, restarted.GetEntryCount(Model, TierKind.Direct));
        Assert.Equal(2, restarted.GetEntryCount(Model, TierKind.Failover));
        int reads = store.Reads;
        var (first, firstVector) = await GetAsync(restarted, 1);
        Assert.Equal((EmbeddingSource.Direct, 1, TimeSpan.FromMinutes(2)), (first.Source, TestTower.GenerationOf(firstVector), first.Age));
        var (third, thirdVector) = await GetAsync(restarted, 3);
        Assert.Equal(EmbeddingSource.Direct, third.Source);
        Assert.Equal(pushed, thirdVector); // the store's push, not the snapshot's row
        Assert.Equal(reads, store.Reads); // both served locally
        var (second, secondVector) = await GetAsync(restarted, 2);
        Assert.Equal((EmbeddingSource.Fresh, 3), (second.Source, TestTower.GenerationOf(secondVector))); // removed: inferred again

        string line = Assert.Single(Logged(PrefetchedEvent));
        Assert.Contains("for the 3 users of its snapshots", line, StringComparison.Ordinal);
        Assert.Contains(": 2 fresh, 0 for the failover tier only, 1 with no usable value", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_value_older_than_the_direct_ttl_goes_to_the_failover_tier_only()
    {
        var store = new InMemoryRegionalStore(_clock);
        await using (var before = Host(store, generation: 1))
        {
            await before.WhenReadyAsync();
            await InferAsync(before, 1);
        }

        _clock.Advance(TimeSpan.FromMinutes(11)); // past the direct TTL (10 min), within the failover TTL
        await using var restarted = Host(store, generation: 2);
        await restarted.WhenReadyAsync();

        Assert.Equal(0, restarted.GetEntryCount(Model, TierKind.Direct));
        Assert.Equal(1, restarted.GetEntryCount(Model, TierKind.Failover));
        Assert.Contains(": 0 fresh, 1 for the failover tier only", Assert.Single(Logged(PrefetchedEvent)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_removal_heard_while_the_prefetch_reads_the_store_keeps_the_user_out()
    {
        var inner = new InMemoryRegionalStore(_clock);
        await using (var before = Host(inner, generation: 1))
        {
            await before.WhenReadyAsync();
            await InferAsync(before, 1, 2);
        }

        await using var other = Host(inner, generation: 2, snapshots: false);
        await other.WhenReadyAsync();
        var store = new HeldRead(inner) { BeforeAnswer = () => other.RemoveAsync(Model, 1) }; // after the values were read
        await using var restarted = Host(store, generation: 3);
        await restarted.WhenReadyAsync();

        Assert.Null(store.BeforeAnswer); // the prefetch's read ran the removal
        Assert.Equal(1, restarted.GetEntryCount(Model, TierKind.Direct));
        Assert.Equal(1, restarted.GetEntryCount(Model, TierKind.Failover));
        Assert.Equal(EmbeddingSource.Direct, (await GetAsync(restarted, 2)).Result.Source);
        Assert.Equal(EmbeddingSource.Fresh, (await GetAsync(restarted, 1)).Result.Source);
    }

    [Fact]
    public async Task Nothing_is_prefetched_without_the_subscription_and_the_snapshots_rows_are_never_restored()
    {
        var inner = new InMemoryRegionalStore(_clock);
        await using (var before = Host(inner, generation: 1))
        {
            await before.WhenReadyAsync();
            await InferAsync(before, 1, 2);
        }

        await using var restarted = Host(new FailingSubscriptions(inner, failures: int.MaxValue), generation: 2);
        await restarted.WhenReadyAsync();

        Assert.Equal(0, restarted.GetEntryCount(Model, TierKind.Direct) + restarted.GetEntryCount(Model, TierKind.Failover));
        Assert.Contains(
            "restored nothing of every model from its snapshots: the invalidation channel could not be subscribed to",
            Assert.Single(Logged(PrefetchSkippedEvent)),
            StringComparison.Ordinal);
        Assert.Empty(Logged(PrefetchedEvent));
    }

    [Fact]
    public async Task A_model_that_does_not_use_the_store_restores_nothing_and_the_others_are_prefetched()
    {
        var store = new InMemoryRegionalStore(_clock);
        await using (var before = Host(store, generation: 1, localModel: true))
        {
            await before.WhenReadyAsync();
            await InferAsync(before, 1, 2);
            Assert.Equal(EmbeddingSource.Fresh, (await before.GetAsync(LocalModel, 1, new float[4])).Source);
        }

        await using var restarted = Host(store, generation: 2, localModel: true);
        await restarted.WhenReadyAsync();

        Assert.Equal(2, restarted.GetEntryCount(Model, TierKind.Direct));
        Assert.Equal(0, restarted.GetEntryCount(LocalModel, TierKind.Direct) + restarted.GetEntryCount(LocalModel, TierKind.Failover));
        string skipped = Assert.Single(Logged(PrefetchSkippedEvent));
        Assert.Contains($"restored nothing of model '{LocalModel}' from its snapshots: it does not use the regional store", skipped, StringComparison.Ordinal);
        Assert.Single(Logged(PrefetchedEvent));
    }

    /// <summary>A host of <see cref="Model"/>, and with <paramref name="localModel"/> also of <see cref="LocalModel"/>,
    /// which does not use the regional store.</summary>
    private EmbeddingCache Host(IRegionalStore store, int generation, bool snapshots = true, bool localModel = false)
    {
        var model = CacheFixture.DefaultModel(4);
        model.Direct.Ttl = TimeSpan.FromMinutes(10);
        var options = new ERCacheOptions { Models = { [Model] = model } };
        var towers = new Dictionary<string, IEmbeddingInference> { [Model] = new TestTower { Generation = generation } };
        if (localModel)
        {
            var local = CacheFixture.DefaultModel(4);
            local.Regional.Enabled = false;
            options.Models[LocalModel] = local;
            towers[LocalModel] = new TestTower { Generation = generation };
        }

        if (snapshots)
        {
            options.Snapshots.Directory = _directory;
        }

        TestThread.LeaveSynchronizationContext();
        return EmbeddingCache.Create(
            options, towers,
            new EmbeddingCacheServices
            {
                TimeProvider = _clock, Dispatcher = InferenceDispatcher.Inline, RegionalStore = store, Logger = new FakeLogger<EmbeddingCache>(_logs),
            });
    }

    private static async Task InferAsync(EmbeddingCache cache, params long[] users)
    {
        foreach (long user in users)
        {
            Assert.Equal(EmbeddingSource.Fresh, (await GetAsync(cache, user)).Result.Source);
        }

        await cache.FlushRegionalWritesAsync();
    }

    private static async Task<(EmbeddingResult Result, float[] Vector)> GetAsync(EmbeddingCache cache, long user)
    {
        var vector = new float[4];
        return (await cache.GetAsync(Model, user, vector), vector);
    }

    private string[] Logged(int eventId) => [.. _logs.GetSnapshot().Where(r => r.Id.Id == eventId && r.Level >= LogLevel.Information).Select(r => r.Message)];

    /// <summary>The in-memory store, whose next read runs <see cref="BeforeAnswer"/> once the values are read and
    /// before they are returned.</summary>
    private sealed class HeldRead(InMemoryRegionalStore inner) : WrappedRegionalStore(inner)
    {
        public Func<Task>? BeforeAnswer { get; set; }

        public override async Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, int valueBytes, CancellationToken cancellationToken)
        {
            var values = await Inner.ReadAsync(field, users, valueBytes, cancellationToken);
            if (BeforeAnswer is { } hook)
            {
                BeforeAnswer = null;
                await hook();
            }

            return values;
        }
    }
}
