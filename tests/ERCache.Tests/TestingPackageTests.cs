using ERCache.Inference;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>What a service's own tests build from the public API and <c>ERCache.Testing</c>: results, a tower's batch, an
/// in-memory regional store, a fake model handle.</summary>
public sealed class TestingPackageTests
{
    [Fact]
    public void Named_results_carry_their_source_age_version_and_cause()
    {
        Assert.Equal((EmbeddingSource.Direct, TimeSpan.FromSeconds(3), "v2", InferenceFailureCause.None, true),
            Shape(EmbeddingResults.Direct(TimeSpan.FromSeconds(3), "v2")));
        Assert.Equal((EmbeddingSource.Regional, TimeSpan.FromSeconds(4), "v1", InferenceFailureCause.None, true),
            Shape(EmbeddingResults.Regional(TimeSpan.FromSeconds(4))));
        Assert.Equal((EmbeddingSource.Fresh, TimeSpan.Zero, "v1", InferenceFailureCause.None, true), Shape(EmbeddingResults.Fresh()));
        Assert.Equal((EmbeddingSource.Failover, TimeSpan.FromMinutes(5), "v1", InferenceFailureCause.Error, true),
            Shape(EmbeddingResults.Failover(TimeSpan.FromMinutes(5), InferenceFailureCause.Error)));
        Assert.Equal((EmbeddingSource.Fallback, TimeSpan.Zero, "v1", InferenceFailureCause.Overload, false),
            Shape(EmbeddingResults.Fallback(InferenceFailureCause.Overload)));
    }

    [Fact]
    public void Results_that_cannot_happen_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddingResults.Direct(TimeSpan.FromSeconds(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddingResults.Fallback(InferenceFailureCause.None));
        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddingResult.Create((EmbeddingSource)42, TimeSpan.Zero, "v1", InferenceFailureCause.None, true));
        Assert.Throws<ArgumentOutOfRangeException>(() => EmbeddingResult.Create(EmbeddingSource.Fresh, TimeSpan.Zero, "v1", (InferenceFailureCause)42, true));
        Assert.Throws<ArgumentNullException>(() => EmbeddingResult.Create(EmbeddingSource.Fresh, TimeSpan.Zero, null!, InferenceFailureCause.None, true));
    }

    [Fact]
    public async Task A_towers_unit_test_runs_it_on_a_batch_and_reads_back_rows_and_outcomes()
    {
        var tower = new DelegateInference((batch, _) =>
        {
            batch.SetRow(0, [1f, 2f, 3f]);
            batch.Fail(1);
            batch.SetRow(2, [1f, 2f]); // wrong length
            batch.GetRow(3).Span.Fill(float.PositiveInfinity);
            return ValueTask.CompletedTask; // row 4 never written
        });
        var batch = new InferenceBatch("ctr", "v1", 3, [10, 11, 12, 13, 14]);

        await tower.InferAsync(batch, CancellationToken.None);

        Assert.Equal([10L, 11, 12, 13, 14], batch.UserIds.ToArray());
        Assert.Equal([1f, 2f, 3f], batch.GetRow(0).ToArray());
        Assert.Equal(
            [InferenceFailureCause.None, InferenceFailureCause.Error, InferenceFailureCause.InvalidVector, InferenceFailureCause.InvalidVector, InferenceFailureCause.InvalidVector],
            Enumerable.Range(0, 5).Select(batch.GetRowOutcome));
        Assert.Throws<ArgumentOutOfRangeException>(() => batch.GetRowOutcome(5));
        Assert.Throws<ArgumentException>(() => new InferenceBatch("ctr", "v1", 3, []));
        Assert.Throws<ArgumentOutOfRangeException>(() => new InferenceBatch("ctr", "v1", 0, [1]));
        Assert.Throws<ArgumentException>(() => new InferenceBatch(" ", "v1", 3, [1]));
    }

    [Fact]
    public async Task The_in_memory_store_replaces_expires_and_removes_like_the_real_ones()
    {
        var clock = new FakeTimeProvider();
        var store = new InMemoryRegionalStore(clock);
        var ttl = TimeSpan.FromMinutes(1);
        Assert.Equal(0, (await store.WriteAsync([new RegionalWriteGroup(1, [new RegionalField("a:v1", [1], 10), new RegionalField("b:v1", [2], 10)], ttl)], default)).Late);
        Assert.Equal(0, (await store.WriteAsync([new RegionalWriteGroup(1, [new RegionalField("a:v1", [3], 11)], ttl), new RegionalWriteGroup(2, [new RegionalField("a:v1", [4], 10)], ttl)], default)).Late);

        var read = await store.ReadAsync("a:v1", new long[] { 1, 2, 3 }, valueBytes: 1, default);
        Assert.Equal([3], read[0]);
        Assert.Equal([4], read[1]);
        Assert.Null(read[2]);
        store.Set(3, "a:v1", new byte[10], ttl); // longer than the reader's values: cut to one byte more, as Redis's GETRANGE
        Assert.Equal(5, (await store.ReadAsync("a:v1", new long[] { 3 }, valueBytes: 4, default))[0]!.Length);

        await store.RemoveAsync(1, "a:v1", removedAtUnixMs: 20, remember: ttl, default);
        Assert.Null(store.Get(1, "a:v1"));
        Assert.Equal([2], store.Get(1, "b:v1"));
        await store.RemoveAsync(1, field: null, removedAtUnixMs: 20, remember: ttl, default);
        Assert.Null(store.Get(1, "b:v1"));

        clock.Advance(ttl);
        Assert.Null(store.Get(2, "a:v1")); // expired
        Assert.Equal((2, 2, 2), (store.Writes, store.Reads, store.Removals));
        await Assert.ThrowsAsync<TaskCanceledException>(() => store.ReadAsync("a:v1", new long[] { 1 }, valueBytes: 1, new CancellationToken(canceled: true)));
    }

    [Fact]
    public async Task The_in_memory_store_keeps_the_newer_value_and_remembers_removals_for_their_time()
    {
        var clock = new FakeTimeProvider();
        var store = new InMemoryRegionalStore(clock);
        var ttl = TimeSpan.FromMinutes(10);
        await store.WriteAsync([new RegionalWriteGroup(1, [new RegionalField("a:v1", [2], 200)], ttl)], default);

        // A write stamped earlier, or at the same time, arrives late: the newer value stays, and the late one is counted.
        int late = (await store.WriteAsync([new RegionalWriteGroup(1, [new RegionalField("a:v1", [1], 100), new RegionalField("b:v1", [9], 100)], ttl)], default)).Late;
        Assert.Equal(1, late);
        Assert.Equal([2], store.Get(1, "a:v1"));
        Assert.Equal([9], store.Get(1, "b:v1"));
        Assert.Equal(1, (await store.WriteAsync([new RegionalWriteGroup(1, [new RegionalField("a:v1", [3], 200)], ttl)], default)).Late);

        // A removal of the user is remembered: a write stamped before it does not bring the user back, a later one does.
        await store.RemoveAsync(1, field: null, removedAtUnixMs: 300, remember: TimeSpan.FromMinutes(5), default);
        Assert.Equal(2, (await store.WriteAsync([new RegionalWriteGroup(1, [new RegionalField("a:v1", [4], 250), new RegionalField("b:v1", [4], 300)], ttl)], default)).Late);
        Assert.Null(store.Get(1, "a:v1"));
        Assert.Equal(0, (await store.WriteAsync([new RegionalWriteGroup(1, [new RegionalField("a:v1", [5], 301)], ttl)], default)).Late);
        Assert.Equal([5], store.Get(1, "a:v1"));

        // A removal of one field: only that field; and once forgotten, an old stamp is written again.
        await store.RemoveAsync(1, "a:v1", removedAtUnixMs: 400, remember: TimeSpan.FromMinutes(5), default);
        Assert.Equal(1, (await store.WriteAsync([new RegionalWriteGroup(1, [new RegionalField("a:v1", [6], 350)], ttl)], default)).Late);
        clock.Advance(TimeSpan.FromMinutes(11)); // past the removal's memory and the value's time to live
        Assert.Equal(0, (await store.WriteAsync([new RegionalWriteGroup(1, [new RegionalField("a:v1", [7], 350)], ttl)], default)).Late);
        Assert.Equal([7], store.Get(1, "a:v1"));
    }

    [Fact]
    public async Task A_cache_on_the_in_memory_store_shares_vectors_between_hosts_with_their_age()
    {
        var clock = new FakeTimeProvider();
        var store = new InMemoryRegionalStore(clock);
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        var towerA = new TestTower { Generation = 1 };
        var towerB = new TestTower { Generation = 2 };
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
        await using var hostA = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = towerA }, new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, RegionalStore = store });
        await using var hostB = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = towerB }, new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, RegionalStore = store });

        var vector = new float[4];
        Assert.Equal(EmbeddingSource.Fresh, (await hostA.GetAsync("ctr", 5, vector)).Source);
        await hostA.FlushRegionalWritesAsync();
        clock.Advance(TimeSpan.FromSeconds(20));

        var onB = await hostB.GetAsync("ctr", 5, vector);
        Assert.Equal((EmbeddingSource.Regional, TimeSpan.FromSeconds(20)), (onB.Source, onB.Age));
        Assert.True(TestTower.BelongsTo(vector, 5));
        Assert.Equal(1, TestTower.GenerationOf(vector));
        Assert.Equal(0, towerB.CallCount);
    }

    [Fact]
    public async Task A_service_can_substitute_its_own_model_handle()
    {
        EmbeddingModel model = new FixedModel();
        var vector = new float[2];
        var result = await model.GetAsync(1, vector);
        Assert.Equal(EmbeddingSource.Direct, result.Source);
        Assert.Equal([0.5f, 0.5f], vector);
        Assert.Throws<ArgumentException>(() => new FixedModel(" "));
    }

    private static (EmbeddingSource, TimeSpan, string, InferenceFailureCause, bool) Shape(EmbeddingResult r) =>
        (r.Source, r.Age, r.ModelVersion, r.FailureCause, r.HasVector);

    /// <summary>A service's own fake: every user gets the same vector as a direct hit.</summary>
    private sealed class FixedModel(string name = "ctr") : EmbeddingModel(name)
    {
        public override ModelPolicy Policy => throw new NotSupportedException();

        public override ValueTask<EmbeddingResult> GetAsync(long userId, Memory<float> destination, CancellationToken cancellationToken = default)
        {
            destination.Span.Fill(0.5f);
            return ValueTask.FromResult(EmbeddingResults.Direct(TimeSpan.FromSeconds(1)));
        }

        public override ValueTask<EmbeddingResult> GetAsync(long userId, Memory<float> destination, EmbeddingRequestOptions options, CancellationToken cancellationToken = default) =>
            GetAsync(userId, destination, cancellationToken);

        public override ValueTask GetManyAsync(ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public override ValueTask GetManyAsync(
            ReadOnlyMemory<long> userIds, Memory<float> destination, Memory<EmbeddingResult> results, EmbeddingRequestOptions options, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();
    }
}
