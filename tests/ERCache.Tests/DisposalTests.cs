using System.Diagnostics.Metrics;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>What disposal promises: no serving afterwards, requests in flight complete, everything released.</summary>
public sealed class DisposalTests
{
    [Fact]
    public async Task After_Dispose_every_call_throws_ObjectDisposedException_even_for_a_cached_user()
    {
        var f = new CacheFixture();
        await f.GetAsync(7); // cached: a hit would not need anything the disposal released
        f.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await f.Cache.GetAsync(CacheFixture.Model, 7, new float[4]));
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await f.Cache.GetManyAsync(CacheFixture.Model, new long[] { 7 }, new float[4], new EmbeddingResult[1]));
        Assert.Throws<ObjectDisposedException>(() => f.Cache.GetPolicy(CacheFixture.Model));
        Assert.Throws<ObjectDisposedException>(() => f.Cache.GetTierStatistics(CacheFixture.Model, TierKind.Direct));
        Assert.Throws<ObjectDisposedException>(() => { _ = f.Cache.FlushRegionalWritesAsync(); });
        f.Cache.Dispose(); // twice is fine
        await f.Cache.DisposeAsync();
    }

    [Fact]
    public void A_cache_built_with_Create_does_not_keep_the_options_object_it_was_given()
    {
        var (cache, options) = CreateAndDropOptions();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        Assert.False(options.IsAlive); // the caller's object, with whatever else it references, is the caller's to keep
        Assert.Equal(CacheFixture.Model, Assert.Single(cache.Models)); // the cache itself is alive and kept its models
        cache.Dispose();
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static (EmbeddingCache Cache, WeakReference Options) CreateAndDropOptions()
    {
        var options = new ERCacheOptions { Models = { [CacheFixture.Model] = CacheFixture.DefaultModel(4) } };
        var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { [CacheFixture.Model] = new TestTower() });
        return (cache, new WeakReference(options));
    }

    [Fact]
    public async Task A_request_in_flight_at_disposal_completes_and_DisposeAsync_waits_for_it()
    {
        using var f = new CacheFixture(m => m.Direct.Eviction = EvictionStrategy.MemoryCache);
        var gate = new TaskCompletionSource();
        f.Tower.Gate = gate.Task;
        var pending = f.GetAsync(7);
        Assert.Equal(1, f.Tower.CallCount);

        var disposing = f.Cache.DisposeAsync().AsTask();
        var direct = f.Cache.GetTier(CacheFixture.Model, TierKind.Direct)!;
        Assert.False(disposing.IsCompleted); // the request still runs on the cache's tiers
        Assert.Equal(0, direct.Count); // not released yet: reading it works

        gate.SetResult();
        var (result, vector) = await pending.WaitAsync(TimeSpan.FromSeconds(10));
        await disposing.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(EmbeddingSource.Fresh, result.Source);
        Assert.True(TestTower.BelongsTo(vector, 7));
        // The MemoryCache was disposed after the request; a read that races with a release is a miss, never an exception.
        Assert.True(Assert.IsType<Tiers.MemoryCacheTier<Storage.Float32Codec>>(direct).IsReleased);
        Assert.False(direct.TryRead(7, 0, long.MaxValue, new float[4], out _));
    }

    [Fact]
    public async Task Two_caches_on_one_meter_factory_have_meters_of_their_own_and_a_disposed_one_stops_reporting()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var factory = services.GetRequiredService<IMeterFactory>();
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
        var first = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = new TestTower() }, new EmbeddingCacheServices { TimeProvider = new FakeTimeProvider(), MeterFactory = factory });
        using var second = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = new TestTower() }, new EmbeddingCacheServices { TimeProvider = new FakeTimeProvider(), MeterFactory = factory });
        await first.GetAsync("ctr", 1, new float[4]);
        await second.GetAsync("ctr", 1, new float[4]);
        await second.GetAsync("ctr", 2, new float[4]);
        using var firstEntries = new MetricCollector<long>(first.Meter, ERCacheDiagnostics.Entries);
        using var secondEntries = new MetricCollector<long>(second.Meter, ERCacheDiagnostics.Entries);

        Assert.NotSame(first.Meter, second.Meter);
        Assert.NotEqual(CacheTagOf(first.Meter), CacheTagOf(second.Meter));
        firstEntries.RecordObservableInstruments();
        secondEntries.RecordObservableInstruments();
        Assert.Equal(1 + 1, firstEntries.GetMeasurementSnapshot().Sum(m => m.Value)); // direct + failover, one user
        Assert.Equal(2 + 2, secondEntries.GetMeasurementSnapshot().Sum(m => m.Value));

        first.Dispose();
        firstEntries.Clear();
        firstEntries.RecordObservableInstruments();
        secondEntries.Clear();
        secondEntries.RecordObservableInstruments();

        Assert.Empty(firstEntries.GetMeasurementSnapshot()); // detached: the disposed cache's gauges report nothing
        Assert.Equal(2 + 2, secondEntries.GetMeasurementSnapshot().Sum(m => m.Value));
    }

    [Fact]
    public async Task Users_waiting_in_a_batch_window_at_release_get_an_error_not_a_hang()
    {
        var f = new CacheFixture(m => m.Inference.BatchWindow = TimeSpan.FromMilliseconds(10));
        var pending = f.GetAsync(7); // waits for its batch window
        Assert.Equal(1, f.Cache.GetPendingUsers(CacheFixture.Model));
        f.Clock.Advance(TimeSpan.FromMilliseconds(5));

        var disposing = f.Cache.DisposeAsync().AsTask();
        f.Clock.Advance(TimeSpan.FromMilliseconds(45)); // the caller's deadline: the request completes, the cache is released
        var (result, _) = await pending.WaitAsync(TimeSpan.FromSeconds(10));
        await disposing.WaitAsync(TimeSpan.FromSeconds(10));
        f.Clock.Advance(TimeSpan.FromSeconds(1)); // the window timer was disposed with the scheduler: no call starts

        Assert.Equal(EmbeddingSource.Fallback, result.Source);
        Assert.Equal(0, f.Cache.GetPendingUsers(CacheFixture.Model));
        Assert.Equal(0, f.Tower.CallCount);
        f.Metrics.Dispose();
    }

    private static string? CacheTagOf(Meter meter) =>
        meter.Tags?.FirstOrDefault(t => t.Key == ERCacheDiagnostics.CacheTag).Value as string;

    [Fact]
    public async Task Dispose_with_a_request_in_flight_returns_at_once_and_the_request_is_answered_by_its_deadline()
    {
        var f = new CacheFixture();
        var hang = new TaskCompletionSource();
        f.Tower.Gate = hang.Task;
        var pending = f.GetAsync(7);
        Assert.Equal(1, f.Tower.CallCount);

        f.Dispose();
        f.Clock.Advance(TimeSpan.FromMilliseconds(50));
        var (result, _) = await pending.WaitAsync(TimeSpan.FromSeconds(10));
        hang.SetResult(); // the late result finds the cache released: nothing is written, nothing thrown

        Assert.Equal((EmbeddingSource.Fallback, InferenceFailureCause.Timeout), (result.Source, result.FailureCause));
        Assert.Equal(0, f.Cache.GetInFlight(CacheFixture.Model));
        Assert.Equal(0, f.Cache.GetEntryCount(CacheFixture.Model, TierKind.Direct));
    }
}
