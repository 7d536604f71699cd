using ERCache.Inference;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>
/// DESIGN §2 rules 2 and 9 on the in-memory store, with a fake clock and the manual dispatcher (the same rules run against
/// real redis-server and Garnet in ERCache.Redis.Tests): a regional hit is served with its original age and copied
/// into the local tiers; a value that does not decode exactly is a miss; a store that fails or hangs costs a request
/// nothing past its deadline.
/// </summary>
public sealed class RegionalRulesTests
{
    private const string Model = "ctr";

    [Fact]
    public async Task Rule2_a_regional_hit_keeps_its_original_age_and_is_then_a_direct_hit_on_this_host()
    {
        using var region = new Region();
        await region.ShareAsync(user: 3, generation: 1);
        region.Clock.Advance(TimeSpan.FromSeconds(15));

        var (first, vector) = await region.GetAsync(3);
        Assert.Equal((EmbeddingSource.Regional, TimeSpan.FromSeconds(15)), (first.Source, first.Age));
        Assert.Equal(1, TestTower.GenerationOf(vector));

        region.Clock.Advance(TimeSpan.FromSeconds(5));
        var (second, _) = await region.GetAsync(3);
        Assert.Equal((EmbeddingSource.Direct, TimeSpan.FromSeconds(20)), (second.Source, second.Age));
        Assert.Equal(0, region.Tower.CallCount);
    }

    [Fact]
    public async Task Rule2_a_regional_value_older_than_the_direct_ttl_is_inferred_again_and_kept_for_failover()
    {
        using var region = new Region();
        await region.ShareAsync(user: 3, generation: 1);
        region.Clock.Advance(TimeSpan.FromMinutes(2)); // past the direct TTL (1 min), inside the failover TTL (1 h)

        region.Tower.Whole = (_, _) => throw new InvalidOperationException("tower down");
        var (result, vector) = await region.GetAsync(3);
        Assert.Equal((EmbeddingSource.Failover, TimeSpan.FromMinutes(2), InferenceFailureCause.Error), (result.Source, result.Age, result.FailureCause));
        Assert.True(TestTower.BelongsTo(vector, 3));
        Assert.Equal(1, region.Tower.CallCount);
    }

    public static TheoryData<string> Garbage => ["another user's value", "another version's value", "another model's value", "truncated", "bad header", "empty"];

    [Theory]
    [MemberData(nameof(Garbage))]
    public async Task Rule9_a_value_that_does_not_decode_exactly_is_a_miss(string garbage)
    {
        using var region = new Region();
        var field = RegionalValue.Field(Model, "v1");
        var own = RegionalValue.Encode(StorageFormat.Float32, RegionalValue.Fingerprint(Model, "v1", 4, StorageFormat.Float32), 3, region.Clock.GetUtcNow().ToUnixTimeMilliseconds(), [3, 9, 5, 6]);
        byte[] value = garbage switch
        {
            "another user's value" => RegionalValue.Encode(StorageFormat.Float32, RegionalValue.Fingerprint(Model, "v1", 4, StorageFormat.Float32), 4, region.Clock.GetUtcNow().ToUnixTimeMilliseconds(), [4, 9, 6, 7]),
            "another version's value" => RegionalValue.Encode(StorageFormat.Float32, RegionalValue.Fingerprint(Model, "v0", 4, StorageFormat.Float32), 3, region.Clock.GetUtcNow().ToUnixTimeMilliseconds(), [3, 9, 5, 6]),
            "another model's value" => RegionalValue.Encode(StorageFormat.Float32, RegionalValue.Fingerprint("cvr", "v1", 4, StorageFormat.Float32), 3, region.Clock.GetUtcNow().ToUnixTimeMilliseconds(), [3, 9, 5, 6]),
            "truncated" => own[..^4],
            "bad header" => [.. own.Select((b, i) => i == 0 ? (byte)(b ^ 0xff) : b)],
            _ => [],
        };
        region.Store.Set(3, field, value, TimeSpan.FromHours(1));
        region.Tower.Generation = 2;

        var (result, vector) = await region.GetAsync(3);
        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.True(TestTower.BelongsTo(vector, 3));
        Assert.Equal(2, TestTower.GenerationOf(vector));
    }

    [Theory]
    [InlineData(500, true)] // within Regional:MaxClockSkew (1 s): served, age zero
    [InlineData(1_001, false)] // beyond it: never served, counted
    [InlineData(long.MaxValue / 4, false)] // a broken clock: never fresh until the key expires
    public async Task Rule9_a_value_stamped_in_the_future_is_served_only_within_the_clock_skew_tolerance(long aheadMs, bool served)
    {
        using var region = new Region();
        using var reads = new Microsoft.Extensions.Diagnostics.Metrics.Testing.MetricCollector<long>(region.Cache.Meter, ERCache.Diagnostics.ERCacheDiagnostics.RegionalReads);
        long stamp = region.Clock.GetUtcNow().ToUnixTimeMilliseconds() + aheadMs;
        region.Store.Set(3, RegionalValue.Field(Model, "v1"), RegionalValue.Encode(StorageFormat.Float32, RegionalValue.Fingerprint(Model, "v1", 4, StorageFormat.Float32), 3, stamp, [3, 9, 5, 6]), TimeSpan.FromHours(1));

        var (result, vector) = await region.GetAsync(3);

        Assert.Equal(served ? (EmbeddingSource.Regional, TimeSpan.Zero) : (EmbeddingSource.Fresh, TimeSpan.Zero), (result.Source, result.Age));
        Assert.Equal(served ? 9 : 2, TestTower.GenerationOf(vector)); // the stored value, or the tower's
        Assert.Equal(served ? 0 : 1, reads.GetMeasurementSnapshot().Where(m => Equals(m.Tags["outcome"], "future")).Sum(m => m.Value));
    }

    [Fact]
    public async Task Rule2_a_lookup_larger_than_MaxBatchSize_is_split_and_a_failed_round_trip_costs_only_its_users()
    {
        var shared = new InMemoryRegionalStore(new FakeTimeProvider());
        var store = new PartlyFailingStore(shared, poisoned: 13);
        using var region = new Region(store, regional: r => r.MaxBatchSize = 4);
        long[] users = [.. Enumerable.Range(1, 20).Select(u => (long)u)];
        foreach (long user in users)
        {
            await region.ShareAsync(user, generation: 1, through: shared);
        }

        var vectors = new float[users.Length * 4];
        var results = new EmbeddingResult[users.Length];
        var pending = region.Cache.GetManyAsync(Model, users, vectors, results);
        region.Dispatcher.RunAll();
        await pending;

        Assert.Equal(5, store.Reads); // 20 users, 4 per round trip
        for (int i = 0; i < users.Length; i++)
        {
            bool inFailedTrip = users[i] is >= 13 and <= 16; // the round trip of users 13..16
            Assert.Equal(inFailedTrip ? EmbeddingSource.Fresh : EmbeddingSource.Regional, results[i].Source);
            Assert.Equal(inFailedTrip ? 2 : 1, TestTower.GenerationOf(vectors.AsSpan(i * 4, 4)));
        }
    }

    [Fact]
    public async Task Rule2_a_lookup_asks_for_no_more_than_the_models_value_and_an_oversized_one_is_that_users_miss()
    {
        var gated = new GatedRegionalStore(new FakeTimeProvider());
        using var region = new Region(gated, m => m.Regional.Format = StorageFormat.Float16);
        gated.Inner.Set(7, "ctr:v1", new byte[1 << 20], TimeSpan.FromHours(1)); // a megabyte under the user's key, from elsewhere

        var (result, _) = await region.GetAsync(7);

        Assert.Equal(32 + (4 * 2), gated.LastValueBytes); // the header and a Float16 row of 4
        Assert.Equal(EmbeddingSource.Fresh, result.Source); // cut to 41 bytes by the store: not a value of the model
    }

    [Fact]
    public async Task Rule2_the_round_trips_of_a_large_lookup_go_one_after_another_and_stop_at_the_deadline()
    {
        var gated = new GatedRegionalStore(new FakeTimeProvider());
        using var region = new Region(gated, m => m.Inference.Timeout = TimeSpan.FromMilliseconds(50), r => r.MaxBatchSize = 4);
        long[] users = [.. Enumerable.Range(1, 12).Select(u => (long)u)];
        foreach (long user in users)
        {
            await region.ShareAsync(user, generation: 1, through: gated.Inner);
        }

        gated.HoldReads();
        var results = new EmbeddingResult[users.Length];
        var pending = region.Cache.GetManyAsync(Model, users, new float[users.Length * 4], results);
        Assert.True(await gated.NextHeldReadAsync());
        Assert.Equal(1, gated.HeldReads); // not three at once: the second waits for the first

        region.Clock.Advance(TimeSpan.FromMilliseconds(5)); // the first round trip's Regional:Timeout
        Assert.True(await gated.NextHeldReadAsync(), "the second round trip was not sent after the first timed out");
        region.Clock.Advance(TimeSpan.FromMilliseconds(45)); // the request's whole deadline: no third round trip
        gated.ReleaseReads();
        region.Dispatcher.RunAll();
        await pending;

        Assert.Equal(2, gated.HeldReads);
        Assert.All(results, r => Assert.NotEqual(EmbeddingSource.Regional, r.Source));
    }

    [Fact]
    public async Task Rule9_a_store_that_throws_costs_nothing_but_the_regional_hit()
    {
        using var region = new Region(new ThrowingRegionalStore());
        var (result, vector) = await region.GetAsync(3);
        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.True(TestTower.BelongsTo(vector, 3));

        region.Clock.Advance(TimeSpan.FromMinutes(2));
        region.Tower.Whole = (_, _) => throw new InvalidOperationException("tower down");
        var (failover, _) = await region.GetAsync(3);
        Assert.Equal((EmbeddingSource.Failover, TimeSpan.FromMinutes(2)), (failover.Source, failover.Age)); // from the local tier
    }

    [Fact]
    public async Task Rule9_a_store_that_hangs_is_given_up_at_the_regional_timeout_and_the_request_goes_on_to_inference()
    {
        var hanging = new GatedRegionalStore(new FakeTimeProvider());
        using var region = new Region(hanging);
        await region.ShareAsync(user: 3, generation: 1, through: hanging.Inner);
        hanging.HoldReads(); // never released

        var vector = new float[4];
        var pending = region.Cache.GetAsync(Model, 3, vector);
        Assert.False(pending.IsCompleted);
        Assert.Equal(0, region.Dispatcher.Pending); // still in the lookup

        region.Clock.Advance(TimeSpan.FromMilliseconds(5)); // Regional:Timeout
        Assert.Equal(1, region.Dispatcher.Pending); // gone on to inference
        region.Dispatcher.RunAll();
        var result = await pending;
        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        hanging.ReleaseReads();
    }

    [Fact]
    public async Task Rule11_a_regional_hit_copied_in_never_replaces_a_newer_local_vector()
    {
        var gated = new GatedRegionalStore(new FakeTimeProvider());
        using var region = new Region(gated);
        await region.ShareAsync(user: 4, generation: 1, through: gated.Inner);
        region.Clock.Advance(TimeSpan.FromSeconds(10));

        // A lookup reads the shared vector; while its answer is in flight, a forced refresh infers a newer one here.
        gated.HoldReads();
        var vector = new float[4];
        var lookup = region.Cache.GetAsync(Model, 4, vector);
        Assert.Equal(1, gated.HeldReads);
        var forced = region.Cache.GetAsync(Model, 4, new float[4], new EmbeddingRequestOptions { ForceRefresh = true });
        region.Dispatcher.RunAll();
        Assert.Equal(EmbeddingSource.Fresh, (await forced).Source);
        gated.ReleaseReads();
        Assert.Equal((EmbeddingSource.Regional, 1), ((await lookup).Source, TestTower.GenerationOf(vector))); // its own request

        var (next, nextVector) = await region.GetAsync(4);
        Assert.Equal((EmbeddingSource.Direct, 2, TimeSpan.Zero), (next.Source, TestTower.GenerationOf(nextVector), next.Age)); // the newer stays
    }

    [Fact]
    public async Task A_vector_pushed_while_a_lookup_is_in_flight_is_kept_and_served_afterwards()
    {
        var gated = new GatedRegionalStore(new FakeTimeProvider());
        using var region = new Region(gated);
        await region.ShareAsync(user: 5, generation: 1, through: gated.Inner);
        region.Clock.Advance(TimeSpan.FromSeconds(1)); // the shared vector is a second old: the push is newer

        gated.HoldReads();
        var lookup = region.Cache.GetAsync(Model, 5, new float[4]);
        Assert.Equal(1, gated.HeldReads);
        float[] pushed = [5, 77, 7, 8]; // user 5's row at generation 77
        region.Cache.SetVector(Model, 5, pushed);
        gated.ReleaseReads();
        Assert.Equal(EmbeddingSource.Regional, (await lookup).Source); // the lookup began first: its own request gets the old one

        for (int i = 0; i < 3; i++)
        {
            var (result, vector) = await region.GetAsync(5);
            Assert.Equal((EmbeddingSource.Direct, 77), (result.Source, TestTower.GenerationOf(vector)));
        }
    }

    [Fact]
    public async Task A_lookup_overtaken_by_a_removal_never_puts_the_removed_vector_in_a_tier_not_even_for_a_moment()
    {
        // The lookup read the value before the removal; its answer arrives after the removal returned. From then on no
        // request may find the value locally, so a thread watches the direct tier while the lookup takes its answer in.
        // (The lookup used to copy the value in and take it out again on seeing the removal's fence: the watcher saw it.)
        var gated = new GatedRegionalStore(new FakeTimeProvider());
        using var region = new Region(gated);
        const int users = 100;
        int seen = 0;
        for (long user = 1; user <= users; user++)
        {
            await region.ShareAsync(user, generation: 1, through: gated.Inner);
            gated.HoldReads();
            var lookup = region.Cache.GetAsync(Model, user, new float[4]);
            Assert.True(await gated.NextHeldReadAsync());
            await region.Cache.RemoveAsync(Model, user);

            bool done = false;
            var watcher = CheckedThread.Start(() =>
            {
                while (!Volatile.Read(ref done))
                {
                    seen += region.Cache.GetTierStatistics(Model, TierKind.Direct)!.Value.Count > 0 ? 1 : 0;
                }
            });
            gated.ReleaseReads();
            Assert.Equal(EmbeddingSource.Regional, (await lookup).Source); // the lookup began first: its own request gets it
            Volatile.Write(ref done, true);
            watcher.Join();
        }

        Assert.Equal(0, seen);
        Assert.Equal(0, region.Cache.GetTierStatistics(Model, TierKind.Failover)!.Value.Count);
    }

    [Fact]
    public async Task A_disposal_waits_for_a_removal_in_flight_which_then_completes()
    {
        var gated = new GatedRegionalStore(new FakeTimeProvider());
        var region = new Region(gated, m => m.Direct.Eviction = EvictionStrategy.MemoryCache); // a released MemoryCache throws
        await region.GetAsync(6);
        gated.RemovalGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var removal = region.Cache.RemoveAsync(Model, 6);
        var disposal = region.Cache.DisposeAsync().AsTask();
        Assert.False(removal.IsCompleted);
        Assert.False(disposal.IsCompleted); // the removal holds the tiers

        gated.RemovalGate.SetResult();
        Assert.Equal(2, await removal); // both local tiers, no ObjectDisposedException
        await disposal;
        await Assert.ThrowsAsync<ObjectDisposedException>(() => region.Cache.RemoveAsync(Model, 6));
    }

    [Fact]
    public async Task A_removal_does_not_wait_for_a_stalled_write_queue_and_no_value_queued_before_it_lands_after_it()
    {
        var gated = new GatedRegionalStore(new FakeTimeProvider());
        using var region = new Region(gated, regional: o => o.MaxBatchSize = 64);
        for (long user = 1; user <= QueuedUsers; user++)
        {
            region.Cache.SetVector(Model, user, [user, 1, 0, 0]);
        }

        gated.WriteGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously); // the store stalls
        var flush = region.Cache.FlushRegionalWritesAsync(); // holds the flush: its first round trip waits at the store
        Assert.Equal(1, gated.WritesStarted);

        // 313 round trips of WriteTimeout each are queued ahead; the removal is one round trip, on a clock that stands.
        Assert.Equal(2, await region.Cache.RemoveAsync(Model, QueuedUsers).WaitAsync(TimeSpan.FromSeconds(10))); // the last pushed: still local
        Assert.Equal(1, gated.Inner.Removals);

        gated.WriteGate.SetResult(); // the store comes back: every queued value reaches it, after the removal
        gated.WriteGate = null;
        await flush;
        Assert.Equal(QueuedUsers - 1, gated.Inner.Count); // the removed user's was stamped before the removal: refused
        Assert.Null(gated.Inner.Get(QueuedUsers, RegionalValue.Field(Model, "v1")));
        Assert.NotNull(gated.Inner.Get(QueuedUsers - 1, RegionalValue.Field(Model, "v1")));
    }

    [Fact]
    public async Task A_disposal_writes_the_queue_within_one_write_timeout_and_counts_what_it_could_not()
    {
        var gated = new GatedRegionalStore(new FakeTimeProvider());
        var region = new Region(gated, regional: o => o.MaxBatchSize = 64);
        using var dropped = new Microsoft.Extensions.Diagnostics.Metrics.Testing.MetricCollector<long>(region.Cache.Meter, ERCache.Diagnostics.ERCacheDiagnostics.RegionalWritesDropped);
        for (long user = 1; user <= QueuedUsers; user++)
        {
            region.Cache.SetVector(Model, user, [user, 1, 0, 0]);
        }

        gated.WriteGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously); // stalled for good
        var disposal = region.Cache.DisposeAsync().AsTask();
        await gated.WriteHeld.WaitAsync(TimeSpan.FromSeconds(10)); // the final flush began (its deadline is set before it)
        Assert.False(disposal.IsCompleted);

        region.Clock.Advance(TimeSpan.FromSeconds(1)); // Regional:WriteTimeout, once: not once per round trip
        await disposal.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, gated.Inner.Count);
        Assert.Equal(QueuedUsers, dropped.GetMeasurementSnapshot().Where(m => (string?)m.Tags["reason"] == "timeout").Sum(m => m.Value));
        Assert.True(gated.WritesStarted <= 3, $"{gated.WritesStarted} round trips began"); // not one per batch (313)
    }

    private const int QueuedUsers = 20_000;

    /// <summary>One host (<see cref="Cache"/>) on a regional store, with another host's values written through
    /// <see cref="ShareAsync"/>.</summary>
    private sealed class Region : IDisposable
    {
        public Region(IRegionalStore? store = null, Action<ModelOptions>? configure = null, Action<RegionalOptions>? regional = null)
        {
            Store = new InMemoryRegionalStore(Clock);
            TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
            var options = Options();
            configure?.Invoke(options.Models[Model]);
            regional?.Invoke(options.Regional);
            Cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { [Model] = Tower }, new EmbeddingCacheServices { TimeProvider = Clock, Dispatcher = Dispatcher, RegionalStore = store ?? Store });
        }

        public FakeTimeProvider Clock { get; } = new();

        public ManualInferenceDispatcher Dispatcher { get; } = new();

        public InMemoryRegionalStore Store { get; }

        public TestTower Tower { get; } = new() { Generation = 2 };

        public EmbeddingCache Cache { get; }

        /// <summary>Another host infers <paramref name="user"/> and writes it to the store.</summary>
        public async Task ShareAsync(long user, int generation, IRegionalStore? through = null)
        {
            var dispatcher = new ManualInferenceDispatcher();
            TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
            await using var other = EmbeddingCache.Create(
                Options(),
                new Dictionary<string, IEmbeddingInference> { [Model] = new TestTower { Generation = generation } },
                new EmbeddingCacheServices { TimeProvider = Clock, Dispatcher = dispatcher, RegionalStore = through ?? Store });
            var computing = other.GetAsync(Model, user, new float[4]);
            dispatcher.RunAll();
            Assert.Equal(EmbeddingSource.Fresh, (await computing).Source);
            await other.FlushRegionalWritesAsync();
        }

        public async Task<(EmbeddingResult Result, float[] Vector)> GetAsync(long user)
        {
            var vector = new float[4];
            var pending = Cache.GetAsync(Model, user, vector);
            Dispatcher.RunAll();
            return (await pending, vector);
        }

        public void Dispose() => Cache.Dispose();

        private static ERCacheOptions Options() => new() { Models = { [Model] = CacheFixture.DefaultModel(4) } };
    }

    /// <summary>The in-memory store, failing every lookup that includes <see cref="Poisoned"/>.</summary>
    private sealed class PartlyFailingStore(InMemoryRegionalStore inner, long poisoned) : IRegionalStore
    {
        public long Poisoned => poisoned;

        public int Reads { get; private set; }

        public Task<byte[]?[]> ReadAsync(string field, ReadOnlyMemory<long> users, int valueBytes, CancellationToken cancellationToken)
        {
            Reads++;
            return users.Span.Contains(poisoned) ? Task.FromException<byte[]?[]>(new IOException("one shard down")) : inner.ReadAsync(field, users, valueBytes, cancellationToken);
        }

        public Task<RegionalWriteResult> WriteAsync(IReadOnlyList<RegionalWriteGroup> groups, CancellationToken cancellationToken) => inner.WriteAsync(groups, cancellationToken);

        public Task RemoveAsync(long userId, string? field, long removedAtUnixMs, TimeSpan remember, CancellationToken cancellationToken) =>
            inner.RemoveAsync(userId, field, removedAtUnixMs, remember, cancellationToken);
    }
}
