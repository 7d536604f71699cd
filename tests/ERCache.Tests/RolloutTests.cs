using System.Collections.Concurrent;
using ERCache.Inference;
using ERCache.Models;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>
/// DESIGN §2 rule 10: a rollout's next version is warmed on spare slots only, into its own tiers; when it becomes
/// current, the warmed users are direct hits of it with their warm-up age, and no vector of one version is ever served
/// as the other.
/// </summary>
public sealed class RolloutTests
{
    private const string Model = "ctr";

    /// <summary>A tower whose vectors tell the version that computed them (<c>[u, 1 or 2, u + 2, u + 3]</c> for v1 or v2),
    /// and which records, per call, the version, the users and what the cache looked like when it started.</summary>
    private sealed class VersionedTower : IEmbeddingInference
    {
        public ConcurrentQueue<(string Version, long[] Users, int QueuedRequests, int InFlight)> Calls { get; } = new();

        public Func<(int Queued, int InFlight)>? Observe { get; set; }

        public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
        {
            var seen = Observe?.Invoke() ?? (0, 0);
            Calls.Enqueue((batch.Version, batch.UserIds.ToArray(), seen.Queued, seen.InFlight));
            for (int i = 0; i < batch.Count; i++)
            {
                TestTower.Fill(batch.GetRow(i).Span, batch.UserIds.Span[i], GenerationOf(batch.Version));
            }

            return ValueTask.CompletedTask;
        }

        public static int GenerationOf(string version) => version == "v2" ? 2 : 1;

        public long[] UsersInferredFor(string version) => [.. Calls.Where(c => c.Version == version).SelectMany(c => c.Users).Order()];
    }

    private static ERCacheOptions Options(string version = "v1", string? next = null, Action<ModelOptions>? configure = null)
    {
        var model = CacheFixture.DefaultModel(4);
        model.Version = version;
        model.Direct.Ttl = TimeSpan.FromMinutes(10);
        model.Inference.MaxConcurrency = 2;
        model.Inference.MaxBatchSize = 4;
        model.Rollout = new RolloutOptions { NextVersion = next };
        configure?.Invoke(model);
        return new ERCacheOptions { Models = { [Model] = model } };
    }

    private sealed class Host : IAsyncDisposable
    {
        public Host(FakeTimeProvider clock, ManualInferenceDispatcher dispatcher, ERCacheOptions options, IRegionalStore? store = null)
        {
            TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
            Monitor = new ManualOptionsMonitor(options);
            Dispatcher = dispatcher;
            Cache = new EmbeddingCache(Monitor, _ => Tower, new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = dispatcher, RegionalStore = store });
            Tower.Observe = () => (Cache.GetQueuedUsers(Model), Cache.GetInFlight(Model));
        }

        public VersionedTower Tower { get; } = new();

        public ManualOptionsMonitor Monitor { get; }

        public ManualInferenceDispatcher Dispatcher { get; }

        public EmbeddingCache Cache { get; }

        public async Task<(EmbeddingResult Result, float[] Vector)> GetAsync(long user)
        {
            var vector = new float[4];
            var call = Cache.GetAsync(Model, user, vector);
            Dispatcher.RunAll();
            return (await call, vector);
        }

        public ValueTask DisposeAsync() => Cache.DisposeAsync();
    }

    [Fact]
    public async Task The_next_version_is_warmed_into_its_own_tiers_and_its_users_are_direct_hits_after_the_switch()
    {
        var clock = new FakeTimeProvider();
        var dispatcher = new ManualInferenceDispatcher();
        await using var host = new Host(clock, dispatcher, Options());
        long[] users = [1, 2, 3, 4, 5, 6];
        foreach (long user in users)
        {
            await host.GetAsync(user);
        }

        clock.Advance(TimeSpan.FromMinutes(1));
        host.Monitor.Raise(Options(next: "v2"));
        Assert.Equal(0, host.Cache.GetInFlight(Model)); // the pass that lists whom to warm holds no slot
        Assert.True(dispatcher.RunNext());
        Assert.Equal(1, dispatcher.Pending); // one warming call (half of MaxConcurrency 2), four users
        dispatcher.RunAll();                  // each call that ends starts the next: all six users warmed
        Assert.Equal(users, host.Tower.UsersInferredFor("v2"));

        // While v1 is current, requests are v1 direct hits: the v2 vectors are never served.
        foreach (long user in users)
        {
            var (result, vector) = await host.GetAsync(user);
            Assert.Equal((EmbeddingSource.Direct, "v1", 1), (result.Source, result.ModelVersion, TestTower.GenerationOf(vector)));
        }

        clock.Advance(TimeSpan.FromMinutes(2));
        host.Monitor.Raise(Options(version: "v2"));
        int callsBefore = host.Tower.Calls.Count;
        foreach (long user in users)
        {
            var (result, vector) = await host.GetAsync(user);
            Assert.Equal((EmbeddingSource.Direct, "v2", 2), (result.Source, result.ModelVersion, TestTower.GenerationOf(vector)));
            Assert.Equal(TimeSpan.FromMinutes(2), result.Age); // the warm-up's age, not the switch's
            Assert.True(TestTower.BelongsTo(vector, user));
        }

        Assert.Equal(callsBefore, host.Tower.Calls.Count);

        // A user nobody warmed is inferred for v2; its v1 vector is never served as v2.
        var (cold, coldVector) = await host.GetAsync(99);
        Assert.Equal((EmbeddingSource.Fresh, "v2", 2), (cold.Source, cold.ModelVersion, TestTower.GenerationOf(coldVector)));
        Assert.Equal("v2", host.Tower.Calls.Last().Version);
    }

    [Fact]
    public async Task Warming_starts_only_on_a_spare_slot_and_never_holds_one_a_request_waits_for()
    {
        var clock = new FakeTimeProvider();
        var dispatcher = new ManualInferenceDispatcher();
        var options = Options(next: null, configure: m => m.Inference.MaxBatchSize = 1);
        await using var host = new Host(clock, dispatcher, options);
        for (long user = 1; user <= 12; user++)
        {
            await host.GetAsync(user);
        }

        clock.Advance(TimeSpan.FromMinutes(11)); // every direct entry expired: each request below is a miss
        host.Monitor.Raise(Options(next: "v2", configure: m => m.Inference.MaxBatchSize = 1));
        Assert.True(dispatcher.RunNext());     // the pass that lists whom to warm
        Assert.Equal(1, dispatcher.Pending);   // one warming call holds one of the two slots

        // Requests arrive: the free slot goes to the first, the others queue; no warming call starts while they wait.
        var requests = new[] { 1L, 2, 3 }.Select(u => host.Cache.GetAsync(Model, u, new float[4]).AsTask()).ToArray();
        Assert.Equal(2, host.Cache.GetQueuedUsers(Model));
        while (dispatcher.RunNext())
        {
            clock.Advance(TimeSpan.FromMilliseconds(1));
        }

        foreach (var request in requests)
        {
            var result = await request;
            Assert.Equal((EmbeddingSource.Fresh, "v1"), (result.Source, result.ModelVersion));
        }

        // The tower sees the cache when a call runs: the first warming call was dispatched before the requests came,
        // every later one started from a call that ended with nothing queued.
        var calls = host.Tower.Calls.Skip(12).ToArray();
        Assert.Equal("v2", calls[0].Version);
        Assert.All(calls.Skip(1).Where(c => c.Version == "v2"), c => Assert.Equal(0, c.QueuedRequests));
        Assert.All(calls, c => Assert.True(c.InFlight <= 2));
        Assert.Equal(3, calls.Count(c => c.Version == "v1"));
        Assert.Equal(Enumerable.Range(1, 12).Select(u => (long)u), host.Tower.UsersInferredFor("v2")); // and it still warmed everyone
    }

    [Fact]
    public async Task At_most_the_rollouts_MaxConcurrency_warming_calls_run_at_once()
    {
        var clock = new FakeTimeProvider();
        var dispatcher = new ManualInferenceDispatcher();
        Action<ModelOptions> configure = m => { m.Inference.MaxConcurrency = 8; m.Inference.MaxBatchSize = 1; };
        await using var host = new Host(clock, dispatcher, Options(configure: configure));
        for (long user = 1; user <= 20; user++)
        {
            await host.GetAsync(user);
        }

        host.Monitor.Raise(Options(next: "v2", configure: m => { configure(m); m.Rollout.MaxConcurrency = 3; }));
        Assert.True(dispatcher.RunNext()); // the pass that lists whom to warm
        Assert.Equal(3, dispatcher.Pending);
        host.Monitor.Raise(Options(next: "v2", configure: configure)); // the default: half of MaxConcurrency
        Assert.Equal(4, dispatcher.Pending);
        dispatcher.RunAll();
        Assert.Equal(20, host.Tower.UsersInferredFor("v2").Length);
    }

    [Fact]
    public async Task A_removal_during_the_rollout_removes_the_next_versions_vector_too()
    {
        var clock = new FakeTimeProvider();
        var dispatcher = new ManualInferenceDispatcher();
        var store = new InMemoryRegionalStore(clock);
        await using var host = new Host(clock, dispatcher, Options(), store);
        await host.GetAsync(5);
        host.Monitor.Raise(Options(next: "v2"));
        dispatcher.RunAll();
        await host.Cache.FlushRegionalWritesAsync();
        Assert.NotNull(store.Get(5, RegionalValueField("v2")));

        Assert.Equal(4, await host.Cache.RemoveAsync(Model, 5)); // two tiers of each version
        Assert.Null(store.Get(5, RegionalValueField("v2")));
        host.Monitor.Raise(Options(version: "v2"));
        var (result, _) = await host.GetAsync(5);
        Assert.Equal((EmbeddingSource.Fresh, "v2"), (result.Source, result.ModelVersion));
    }

    [Fact]
    public async Task Another_host_switching_later_reads_the_warmed_vectors_from_the_regional_store_as_the_new_version()
    {
        var clock = new FakeTimeProvider();
        var dispatcher = new ManualInferenceDispatcher();
        var store = new InMemoryRegionalStore(clock);
        await using var warming = new Host(clock, dispatcher, Options(), store);
        await using var other = new Host(clock, dispatcher, Options(), store);
        await other.GetAsync(8); // a v1 value of user 9's neighbour, and user 9 known to v1 only
        await other.GetAsync(9);
        await warming.GetAsync(8);
        warming.Monitor.Raise(Options(next: "v2"));
        dispatcher.RunAll();
        await warming.Cache.FlushRegionalWritesAsync();
        await other.Cache.FlushRegionalWritesAsync();

        clock.Advance(TimeSpan.FromMinutes(3));
        other.Monitor.Raise(Options(version: "v2"));
        var (shared, vector) = await other.GetAsync(8);
        Assert.Equal((EmbeddingSource.Regional, "v2", 2), (shared.Source, shared.ModelVersion, TestTower.GenerationOf(vector)));
        Assert.Equal(TimeSpan.FromMinutes(3), shared.Age);
        var (notWarmed, v9) = await other.GetAsync(9); // only a v1 value in the store: never served as v2
        Assert.Equal((EmbeddingSource.Fresh, 2), (notWarmed.Source, TestTower.GenerationOf(v9)));
    }

    [Fact]
    public async Task Warming_waits_for_its_start_time()
    {
        var clock = new FakeTimeProvider();
        var dispatcher = new ManualInferenceDispatcher();
        await using var host = new Host(clock, dispatcher, Options());
        await host.GetAsync(1);
        host.Monitor.Raise(Options(next: "v2", configure: m => m.Rollout.Start = clock.GetUtcNow() + TimeSpan.FromMinutes(5)));
        clock.Advance(TimeSpan.FromMinutes(4));
        Assert.Equal(0, dispatcher.Pending);
        clock.Advance(TimeSpan.FromMinutes(1)); // the warmer's timer asks again once a second
        Assert.Equal(1, dispatcher.Pending);
        dispatcher.RunAll();
        Assert.Equal([1L], host.Tower.UsersInferredFor("v2"));
    }

    [Fact]
    public async Task The_warm_share_gauge_and_the_rollout_counter_report_the_warming()
    {
        var clock = new FakeTimeProvider();
        var dispatcher = new ManualInferenceDispatcher();
        await using var host = new Host(clock, dispatcher, Options(configure: m => m.Inference.MaxBatchSize = 2));
        using var metrics = new CacheMetrics(host.Cache.Meter);
        for (long user = 1; user <= 4; user++)
        {
            await host.GetAsync(user);
        }

        host.Monitor.Raise(Options(next: "v2", configure: m => m.Inference.MaxBatchSize = 2));
        dispatcher.RunNext(); // the pass that lists whom to warm
        dispatcher.RunNext(); // two of four warmed; the next call is dispatched
        clock.Advance(TimeSpan.FromSeconds(3)); // the list is rebuilt (and measured) when it runs out, a second apart
        dispatcher.RunAll();
        clock.Advance(TimeSpan.FromSeconds(3));
        dispatcher.RunAll();
        metrics.RecordObservables();
        Assert.Equal(4, metrics.Sum("ercache.inference.background", ("kind", "rollout")));
        Assert.Equal(1.0, metrics.Matching("ercache.rollout.warm_share", ("tier", "failover")).Last().Value);
        Assert.Equal(1.0, metrics.Matching("ercache.rollout.warm_share", ("tier", "direct")).Last().Value);
    }

    [Theory]
    [InlineData("v1", null, null, "Rollout:NextVersion must differ from Version")]
    [InlineData("v2", 3, null, "Rollout:MaxConcurrency must be between 1 and Inference:MaxConcurrency (2) (got 3)")]
    [InlineData("v2", null, 5, "Rollout:BatchSize must be between 1 and Inference:MaxBatchSize (4) (got 5)")]
    public void A_bad_rollout_fails_with_the_settings_path(string next, int? concurrency, int? batch, string message)
    {
        var options = Options(next: next, configure: m => { m.Rollout.MaxConcurrency = concurrency; m.Rollout.BatchSize = batch; });
        var error = Assert.ThrowsAny<Exception>(() => EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { [Model] = new VersionedTower() }));
        Assert.Contains($"ERCache:Models:ctr:{message}", error.Message);
    }

    private static string RegionalValueField(string version) => RegionalValue.Field(Model, version);
}

/// <summary>A rollout's gradual switch: users move to the next version in the order of a hash of their id, evenly over
/// <c>SwitchOver</c>, on one set of delegate slots.</summary>
public sealed class GradualSwitchTests
{
    private const string Model = "ctr";
    private static readonly DateTimeOffset Start = new(2026, 12, 3, 12, 0, 0, TimeSpan.Zero);

    private static ERCacheOptions Options(Action<ModelOptions>? configure = null)
    {
        var model = CacheFixture.DefaultModel(4);
        model.Version = "v1";
        model.Inference.MaxConcurrency = 2;
        model.Inference.MaxBatchSize = 1;
        model.Rollout = new RolloutOptions { NextVersion = "v2", SwitchAt = Start + TimeSpan.FromMinutes(1), SwitchOver = TimeSpan.FromMinutes(10) };
        configure?.Invoke(model);
        return new ERCacheOptions { Models = { [Model] = model } };
    }

    private sealed class VersionTower : IEmbeddingInference
    {
        public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
        {
            for (int i = 0; i < batch.Count; i++)
            {
                TestTower.Fill(batch.GetRow(i).Span, batch.UserIds.Span[i], batch.Version == "v2" ? 2 : 1);
            }

            return ValueTask.CompletedTask;
        }
    }

    [Fact]
    public async Task Users_switch_by_hash_as_the_switch_advances_and_a_batch_gets_each_users_version()
    {
        var clock = new FakeTimeProvider(Start);
        TestThread.LeaveSynchronizationContext();
        await using var cache = EmbeddingCache.Create(
            Options(), new Dictionary<string, IEmbeddingInference> { [Model] = new VersionTower() },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline });
        long[] users = [.. Enumerable.Range(1, 200).Select(u => (long)u)];

        foreach (var (minutes, share) in new[] { (0.0, 0.0), (1.0, 0.0), (6.0, 0.5), (11.0, 1.0), (20.0, 1.0) })
        {
            clock.SetUtcNow(Start + TimeSpan.FromMinutes(minutes));
            var vectors = new float[users.Length * 4];
            var results = new EmbeddingResult[users.Length];
            await cache.GetManyAsync(Model, users, vectors, results);
            for (int i = 0; i < users.Length; i++)
            {
                bool switched = ModelRuntime.SwitchPosition(users[i]) < share;
                var row = vectors.AsSpan(i * 4, 4);
                Assert.True(TestTower.BelongsTo(row, users[i]));
                Assert.Equal(switched ? "v2" : "v1", results[i].ModelVersion);
                Assert.Equal(switched ? 2 : 1, TestTower.GenerationOf(row)); // never the other version's vector

                var single = new float[4];
                Assert.Equal(switched ? "v2" : "v1", (await cache.GetAsync(Model, users[i], single)).ModelVersion);
            }

            int count = users.Count(u => ModelRuntime.SwitchPosition(u) < share);
            Assert.InRange(count, (int)(share * 200) - 25, (int)(share * 200) + 25); // the hash spreads users evenly
        }
    }

    [Fact]
    public async Task Both_versions_share_the_models_delegate_slots_during_the_switch()
    {
        var clock = new FakeTimeProvider(Start + TimeSpan.FromMinutes(6)); // half the users switched
        var dispatcher = new ManualInferenceDispatcher();
        TestThread.LeaveSynchronizationContext();
        await using var cache = EmbeddingCache.Create(
            Options(m => m.Rollout.Start = Start + TimeSpan.FromDays(1)), // no warming: every dispatched item is a request's call
            new Dictionary<string, IEmbeddingInference> { [Model] = new VersionTower() },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = dispatcher });
        var requests = Enumerable.Range(1, 40).Select(u => cache.GetAsync(Model, u, new float[4]).AsTask()).ToArray();
        int most = 0;
        while (dispatcher.Pending > 0)
        {
            most = Math.Max(most, dispatcher.Pending);
            dispatcher.RunNext();
        }

        var results = await Task.WhenAll(requests);
        Assert.Equal(2, most); // MaxConcurrency 2 for the model, not per version
        Assert.Contains(results, r => r.ModelVersion == "v1");
        Assert.Contains(results, r => r.ModelVersion == "v2");
        Assert.All(results, r => Assert.Equal(EmbeddingSource.Fresh, r.Source));
    }

    [Fact]
    public void SwitchOver_without_SwitchAt_is_refused_with_its_path()
    {
        var options = Options(m => m.Rollout.SwitchAt = null);
        var error = Assert.ThrowsAny<Exception>(() => EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { [Model] = new VersionTower() }));
        Assert.Contains("ERCache:Models:ctr:Rollout:SwitchOver spreads a gradual switch that starts at SwitchAt, which is not set", error.Message);
    }
}
