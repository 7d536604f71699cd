using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>
/// What a model version owns outlives a reload that keeps the version: the tiers, the scheduler and the write fence that
/// orders removals and pushes against writes already under way. A reload between a lookup and a removal must not let
/// the lookup put the removed vector back.
/// </summary>
public sealed class ModelVersionStateTests
{
    private const long User = 7;

    public static TheoryData<string> SameVersionReloads => ["direct ttl", "direct capacity", "failover eviction", "inference timeout"];

    [Theory]
    [MemberData(nameof(SameVersionReloads))]
    public async Task A_removal_after_a_same_version_reload_stays_removed_when_an_earlier_lookup_returns(string change)
    {
        var clock = new FakeTimeProvider();
        var store = new GatedRegionalStore(clock);
        var dispatcher = new ManualInferenceDispatcher();

        // Another host computed the user and shared the vector.
        var otherTower = new TestTower { Generation = 1 };
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
        await using (var other = EmbeddingCache.Create(Options(), new Dictionary<string, IEmbeddingInference> { ["ctr"] = otherTower }, new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = dispatcher, RegionalStore = store.Inner }))
        {
            var shared = new float[4];
            var computing = other.GetAsync("ctr", User, shared);
            dispatcher.RunAll();
            Assert.Equal(EmbeddingSource.Fresh, (await computing).Source);
            await other.FlushRegionalWritesAsync();
        }

        var tower = new TestTower { Generation = 2 };
        await using var host = new ReloadableCache(Options(), name => name == "ctr" ? tower : null, clock: clock, dispatcher: dispatcher, store: store);
        var cache = host.Cache;

        // This host misses locally; its lookup reads the shared vector, and the answer is in flight.
        store.HoldReads();
        var vector = new float[4];
        var lookup = cache.GetAsync("ctr", User, vector);
        Assert.Equal(1, store.HeldReads);

        // A reload that keeps the version, then a removal that completes.
        var before = cache.GetPolicy("ctr");
        var reloaded = Options();
        Change(reloaded.Models["ctr"], change);
        host.Reload(reloaded);
        Assert.NotSame(before, cache.GetPolicy("ctr"));
        Assert.Equal(before.Version, cache.GetPolicy("ctr").Version);
        await cache.RemoveAsync("ctr", User);
        Assert.Null(store.Inner.Get(User, FieldOf(cache)));

        // The lookup began before the removal: it may answer its own request with what it read...
        store.ReleaseReads();
        var first = await lookup;
        Assert.Equal(EmbeddingSource.Regional, first.Source);
        Assert.Equal(1, TestTower.GenerationOf(vector));

        // ...but it must not leave the removed vector in any tier. With the tower failing, the next request has nothing
        // to serve: not Direct, not Failover.
        Assert.Equal(0, cache.GetEntryCount("ctr", TierKind.Direct));
        Assert.Equal(0, cache.GetEntryCount("ctr", TierKind.Failover));
        tower.Whole = (_, _) => throw new InvalidOperationException("tower down");
        var next = cache.GetAsync("ctr", User, vector);
        dispatcher.RunAll();
        var result = await next;
        Assert.Equal(EmbeddingSource.Fallback, result.Source);
        Assert.Equal(1, tower.CallCount); // the one failing call
    }

    [Fact]
    public async Task A_same_version_reload_keeps_the_scheduler_and_the_tiers_whose_storage_is_unchanged()
    {
        var tower = new TestTower();
        await using var host = new ReloadableCache(Options(), name => name == "ctr" ? tower : null, dispatcher: InferenceDispatcher.Inline);
        var cache = host.Cache;
        Assert.Equal(EmbeddingSource.Fresh, (await cache.GetAsync("ctr", User, new float[4])).Source);
        var state = cache.ResolveState("ctr");
        var (direct, failover) = (cache.GetTier("ctr", TierKind.Direct), cache.GetTier("ctr", TierKind.Failover));

        var reloaded = Options();
        reloaded.Models["ctr"].Direct.Capacity = 2000;
        reloaded.Models["ctr"].Inference.MaxConcurrency = 2;
        host.Reload(reloaded);

        Assert.Same(state, cache.ResolveState("ctr"));
        Assert.Same(state.Scheduler, cache.ResolveState("ctr").Scheduler);
        Assert.NotSame(direct, cache.GetTier("ctr", TierKind.Direct)); // capacity changed: rebuilt empty
        Assert.Same(failover, cache.GetTier("ctr", TierKind.Failover));
        Assert.Equal(2, cache.GetPolicy("ctr").MaxConcurrency);
        Assert.False(state.IsRetired);
    }

    [Fact]
    public async Task A_reload_that_only_turns_huge_pages_off_rebuilds_that_tier()
    {
        var tower = new TestTower();
        await using var host = new ReloadableCache(Options(), name => name == "ctr" ? tower : null, dispatcher: InferenceDispatcher.Inline);
        var cache = host.Cache;
        var (direct, failover) = (cache.GetTier("ctr", TierKind.Direct), cache.GetTier("ctr", TierKind.Failover));

        var reloaded = Options();
        reloaded.Models["ctr"].Failover.HugePages = false;
        host.Reload(reloaded);

        Assert.Same(direct, cache.GetTier("ctr", TierKind.Direct));
        Assert.NotSame(failover, cache.GetTier("ctr", TierKind.Failover));
        Assert.False(cache.GetPolicy("ctr").Failover.HugePages);
        Assert.True(cache.GetPolicy("ctr").Direct.HugePages);
    }

    [Fact]
    public async Task A_new_version_retires_the_old_state_once_its_last_request_ends_and_that_request_writes_nothing()
    {
        var options = Options();
        options.Models["ctr"].Direct.Eviction = EvictionStrategy.MemoryCache;
        var tower = new TestTower { Generation = 1 };
        var dispatcher = new ManualInferenceDispatcher();
        await using var host = new ReloadableCache(options, name => name == "ctr" ? tower : null, dispatcher: dispatcher);
        var cache = host.Cache;
        var old = cache.ResolveState("ctr");
        var oldDirect = Assert.IsType<Tiers.MemoryCacheTier<Storage.Float32Codec>>(cache.GetTier("ctr", TierKind.Direct));

        // A request of v1 waits for inference while v2 becomes current.
        var vector = new float[4];
        var inFlight = cache.GetAsync("ctr", User, vector);
        var v2 = Options();
        v2.Models["ctr"].Version = "v2";
        v2.Models["ctr"].Direct.Eviction = EvictionStrategy.MemoryCache;
        host.Reload(v2);

        var current = cache.ResolveState("ctr");
        Assert.NotSame(old, current);
        Assert.Equal("v2", current.Version);
        Assert.True(old.IsRetired);
        Assert.False(oldDirect.IsReleased); // a request still runs on it

        dispatcher.RunAll();
        var result = await inFlight;
        Assert.Equal((EmbeddingSource.Fresh, "v1"), (result.Source, result.ModelVersion));
        Assert.True(oldDirect.IsReleased); // the last request of v1 released it
        Assert.Equal(0, old.Scheduler.PendingUsers);

        // Nothing of v1 is served as v2: the next request infers again.
        tower.Generation = 2;
        var next = cache.GetAsync("ctr", User, vector);
        dispatcher.RunAll();
        var second = await next;
        Assert.Equal((EmbeddingSource.Fresh, "v2"), (second.Source, second.ModelVersion));
        Assert.Equal(2, TestTower.GenerationOf(vector));
        Assert.Equal(2, tower.CallCount);
    }

    [Fact]
    public async Task A_request_whose_version_was_retired_before_its_miss_path_is_answered_whole_by_the_current_version()
    {
        await using var host = new ReloadableCache(Options(), dispatcher: InferenceDispatcher.Inline);
        var cache = host.Cache;
        var v1 = cache.ResolveState("ctr").Current; // what a request resolved just before the reload
        var v2 = Options();
        v2.Models["ctr"].Version = "v2";
        host.Reload(v2);
        Assert.True(v1.State.IsRetired);

        var vector = new float[4];
        var single = await cache.GetAsync(v1, User, vector, CancellationToken.None);
        Assert.Equal((EmbeddingSource.Fresh, "v2"), (single.Source, single.ModelVersion));

        var users = new long[] { 1, User, 9 };
        var results = new EmbeddingResult[3];
        var vectors = new float[12];
        await cache.GetManyAsync(v1, users, vectors, results, CancellationToken.None);
        Assert.All(results, r => Assert.Equal("v2", r.ModelVersion)); // the hit on v2 and the misses alike
        Assert.Equal(EmbeddingSource.Direct, results[1].Source);
        Assert.True(TestTower.BelongsTo(vectors.AsSpan(8, 4), 9));
    }

    [Fact]
    public async Task A_removed_model_is_retired_and_released_at_once_when_nothing_runs()
    {
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4), ["other"] = CacheFixture.DefaultModel(4) } };
        options.Models["ctr"].Failover.Eviction = EvictionStrategy.MemoryCache;
        await using var host = new ReloadableCache(options, dispatcher: InferenceDispatcher.Inline);
        var cache = host.Cache;
        var removed = cache.ResolveState("ctr");
        var failover = Assert.IsType<Tiers.MemoryCacheTier<Storage.Float32Codec>>(cache.GetTier("ctr", TierKind.Failover));

        host.Reload(new ERCacheOptions { Models = { ["other"] = CacheFixture.DefaultModel(4) } });

        Assert.True(removed.IsRetired);
        Assert.True(failover.IsReleased);
        Assert.Equal(["other"], cache.Models);
        Assert.False(removed.TryEnter());
    }

    private static string FieldOf(EmbeddingCache cache) => Regional.RegionalValue.Field("ctr", cache.GetPolicy("ctr").Version);

    private static void Change(ModelOptions model, string change)
    {
        switch (change)
        {
            case "direct ttl":
                model.Direct.Ttl = TimeSpan.FromMinutes(2);
                break;
            case "direct capacity":
                model.Direct.Capacity = 2000;
                break;
            case "failover eviction":
                model.Failover.Eviction = EvictionStrategy.Sieve;
                break;
            case "inference timeout":
                model.Inference.Timeout = TimeSpan.FromMilliseconds(80);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(change), change, null);
        }
    }

    private static ERCacheOptions Options() => new() { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
}
