using Microsoft.Extensions.Time.Testing;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>Drift sampling and refresh ahead: background inference on spare capacity only, never in a response's way.</summary>
public sealed class FreshnessTests
{
    private const string Model = CacheFixture.Model;

    private static (string, string) Tag(string key, string value) => (key, value);

    /// <summary>1 − cosine similarity, computed here in doubles, independently of the library's kernel.</summary>
    private static double DriftOf(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }

        return 1 - (dot / Math.Sqrt(na * nb));
    }

    private static float[] VectorOf(long user, int generation, int dimensions = 4)
    {
        var row = new float[dimensions];
        TestTower.Fill(row, user, generation);
        return row;
    }

    [Fact]
    public async Task A_sampled_hit_records_the_drift_of_the_served_vector_against_fresh_inference_and_caches_nothing()
    {
        var dispatcher = new ManualInferenceDispatcher();
        using var f = new CacheFixture(m => m.Freshness = new FreshnessOptions { SampleRate = 1 }, dispatcher: dispatcher);
        var fill = f.GetAsync(1);
        dispatcher.RunAll();
        Assert.Equal(EmbeddingSource.Fresh, (await fill).Result.Source);

        f.Tower.Generation = 5; // the model has moved on
        f.Clock.Advance(TimeSpan.FromSeconds(40));
        var served = new float[4];
        var hit = f.Cache.GetAsync(Model, 1, served).AsTask();
        Assert.True(hit.IsCompletedSuccessfully); // answered before the sample runs: never delayed
        Assert.Equal(EmbeddingSource.Direct, (await hit).Source);
        Assert.Equal(VectorOf(1, 0), served);
        Assert.Equal(1, dispatcher.Pending);
        Assert.Equal(1, f.Metrics.Sum(ERCacheDiagnostics.BackgroundInferences, Tag("kind", "drift_sample")));

        dispatcher.RunAll();
        var drift = Assert.Single(f.Metrics.Matching(ERCacheDiagnostics.StalenessDrift));
        Assert.Equal(DriftOf(VectorOf(1, 0), VectorOf(1, 5)), drift.Value, 6);
        Assert.Equal("30s_1m", drift.Tags["age"]);
        Assert.Equal(Model, drift.Tags["model"]);

        // The fresh vector was compared, not cached: the entry still serves generation 0, with its original age.
        f.Clock.Advance(TimeSpan.FromSeconds(1));
        var (again, vector) = await f.GetAsync(1);
        Assert.Equal(EmbeddingSource.Direct, again.Source);
        Assert.Equal(TimeSpan.FromSeconds(41), again.Age);
        Assert.Equal(0, TestTower.GenerationOf(vector));
    }

    [Fact]
    public async Task Drift_follows_the_age_buckets_and_is_zero_when_the_model_has_not_moved()
    {
        var dispatcher = new ManualInferenceDispatcher();
        using var f = new CacheFixture(m =>
        {
            m.Direct.Ttl = TimeSpan.FromHours(2);
            m.Failover.Ttl = TimeSpan.FromHours(3);
            m.Freshness = new FreshnessOptions { SampleRate = 1 };
        }, dispatcher: dispatcher);
        var fill = f.GetAsync(7);
        dispatcher.RunAll();
        await fill;

        var expected = new List<(double Drift, string Bucket)>();
        foreach (var (advance, generation, bucket) in new[] { (10, 0, "lt_30s"), (170, 3, "1m_5m"), (400, 3, "5m_10m"), (3000, 9, "30m_1h"), (30, 9, "ge_1h") })
        {
            f.Tower.Generation = generation;
            f.Clock.Advance(TimeSpan.FromSeconds(advance));
            await f.GetAsync(7);
            dispatcher.RunAll();
            expected.Add((DriftOf(VectorOf(7, 0), VectorOf(7, generation)), bucket));
        }

        var recorded = f.Metrics.Matching(ERCacheDiagnostics.StalenessDrift).ToList();
        Assert.Equal(expected.Count, recorded.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Drift, recorded[i].Value, 6);
            Assert.Equal(expected[i].Bucket, recorded[i].Tags["age"]);
        }

        Assert.Equal(0, recorded[0].Value, 6);
    }

    [Fact]
    public async Task A_share_of_hits_is_sampled()
    {
        // Seeded: every hit draws once, so the samples are exactly the draws below the rate.
        var dispatcher = new ManualInferenceDispatcher();
        var options = new ERCacheOptions { Models = { [CacheFixture.Model] = CacheFixture.DefaultModel(4) } };
        options.Models[CacheFixture.Model].Freshness = new FreshnessOptions { SampleRate = 0.25 };
        using var cache = EmbeddingCache.CreateWithSampling(
            options, new Dictionary<string, IEmbeddingInference> { [CacheFixture.Model] = new TestTower() }, new FakeTimeProvider(), dispatcher, new Random(42));
        using var metrics = new CacheMetrics(cache.Meter);
        var vector = new float[4];
        var fill = cache.GetAsync(CacheFixture.Model, 3, vector);
        dispatcher.RunAll();
        await fill;
        for (int i = 0; i < 4000; i++)
        {
            await cache.GetAsync(CacheFixture.Model, 3, vector);
            dispatcher.RunAll(); // spare capacity again before the next hit
        }

        var draws = new Random(42);
        int expected = Enumerable.Range(0, 4000).Count(_ => draws.NextDouble() < 0.25);
        Assert.Equal(expected, metrics.Count(ERCacheDiagnostics.StalenessDrift));
        Assert.InRange(expected / 4000.0, 0.21, 0.29); // and the rate is what was asked
    }

    [Fact]
    public async Task Refresh_ahead_replaces_an_entry_past_its_fraction_of_the_TTL_so_the_hot_user_never_misses()
    {
        var dispatcher = new ManualInferenceDispatcher();
        using var f = new CacheFixture(m => m.Freshness = new FreshnessOptions { RefreshAhead = 0.5 }, dispatcher: dispatcher);
        var fill = f.GetAsync(1);
        dispatcher.RunAll();
        await fill;

        f.Clock.Advance(TimeSpan.FromSeconds(20)); // younger than half the 60 s TTL: nothing to refresh
        Assert.Equal(EmbeddingSource.Direct, (await f.GetAsync(1)).Result.Source);
        Assert.Equal(0, dispatcher.Pending);

        f.Tower.Generation = 2;
        f.Clock.Advance(TimeSpan.FromSeconds(20)); // 40 s: past half the TTL
        var (hit, vector) = await f.GetAsync(1);
        Assert.Equal(EmbeddingSource.Direct, hit.Source);
        Assert.Equal(0, TestTower.GenerationOf(vector)); // served as it was; the refresh runs behind it
        Assert.Equal(1, dispatcher.Pending);
        dispatcher.RunAll();
        Assert.Equal(1, f.Metrics.Sum(ERCacheDiagnostics.BackgroundInferences, Tag("kind", "refresh")));

        f.Clock.Advance(TimeSpan.FromSeconds(30)); // 70 s after the first write: it would have expired
        var (later, refreshed) = await f.GetAsync(1);
        Assert.Equal(EmbeddingSource.Direct, later.Source);
        Assert.Equal(TimeSpan.FromSeconds(30), later.Age);
        Assert.Equal(2, TestTower.GenerationOf(refreshed));
        Assert.Equal(2, f.Tower.CallCount); // the fill and the refresh; no request-path miss
    }

    [Fact]
    public async Task A_request_for_a_user_being_refreshed_waits_for_the_refresh_instead_of_starting_another()
    {
        var dispatcher = new ManualInferenceDispatcher();
        using var f = new CacheFixture(m => m.Freshness = new FreshnessOptions { RefreshAhead = 0.5 }, dispatcher: dispatcher);
        var fill = f.GetAsync(1);
        dispatcher.RunAll();
        await fill;
        f.Clock.Advance(TimeSpan.FromSeconds(40));
        await f.GetAsync(1); // queues the refresh
        var forced = f.Cache.GetAsync(Model, 1, new float[4], new EmbeddingRequestOptions { ForceRefresh = true }).AsTask();
        Assert.False(forced.IsCompleted);
        Assert.Equal(1, dispatcher.RunAll());
        Assert.Equal(EmbeddingSource.Fresh, (await forced).Source);
        Assert.Equal(2, f.Tower.CallCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_saturated_model_runs_no_drift_sample_and_no_refresh(bool queueToo)
    {
        TestThread.LeaveSynchronizationContext(); // here: the helper is an async method (see TestThread)
        var dispatcher = new ManualInferenceDispatcher();
        using var f = await SampledAndRefreshedAsync(maxConcurrency: 2, dispatcher);

        var held = Task.WhenAll(f.GetAsync(100), f.GetAsync(102)); // take both slots, and stay in flight
        Task<(EmbeddingResult, float[])>? queued = queueToo ? f.GetAsync(101) : null; // waits in the queue
        Assert.Equal(2, dispatcher.Pending);

        f.Clock.Advance(TimeSpan.FromSeconds(10)); // user 1 is sampled; user 2 is past the refresh point
        await f.GetAsync(1);
        f.Clock.Advance(TimeSpan.FromSeconds(25));
        for (int i = 0; i < 50; i++)
        {
            Assert.Equal(EmbeddingSource.Direct, (await f.GetAsync(2)).Result.Source);
            Assert.Equal(EmbeddingSource.Direct, (await f.GetAsync(1)).Result.Source);
        }

        Assert.Equal(2, dispatcher.Pending); // only the held requests' calls
        Assert.Equal(0, f.Metrics.Sum(ERCacheDiagnostics.BackgroundInferences));
        dispatcher.RunAll();
        await held;
        if (queued is not null)
        {
            dispatcher.RunAll();
            await queued;
        }

        Assert.Equal(0, f.Metrics.Count(ERCacheDiagnostics.StalenessDrift));
        Assert.Equal(queueToo ? 4 : 3, f.Tower.CallCount); // fill, the two held (and queued); nothing in the background
    }

    [Fact]
    public async Task A_refresh_or_a_drift_sample_never_takes_the_last_free_slot_so_a_cold_miss_starts_at_once()
    {
        TestThread.LeaveSynchronizationContext(); // here: the helper is an async method (see TestThread)
        var dispatcher = new ManualInferenceDispatcher();
        using var f = await SampledAndRefreshedAsync(maxConcurrency: 2, dispatcher);

        var held = f.GetAsync(100); // one call in flight: one slot left
        f.Clock.Advance(TimeSpan.FromSeconds(35)); // users 1 and 2 are past the refresh point, and every hit is sampled
        for (int i = 0; i < 20; i++)
        {
            Assert.Equal(EmbeddingSource.Direct, (await f.GetAsync(1)).Result.Source);
            Assert.Equal(EmbeddingSource.Direct, (await f.GetAsync(2)).Result.Source);
        }

        Assert.Equal(1, dispatcher.Pending); // no background call took the last slot
        Assert.Equal(0, f.Metrics.Sum(ERCacheDiagnostics.BackgroundInferences));
        var cold = f.GetAsync(200);
        Assert.Equal(2, dispatcher.Pending); // so the cold miss starts at once
        dispatcher.RunAll();
        await held;
        await cold;

        // With both slots free a hit may start one background call, and a cold miss still finds the other.
        Assert.Equal(EmbeddingSource.Direct, (await f.GetAsync(1)).Result.Source);
        Assert.Equal(1, dispatcher.Pending);
        Assert.Equal(1, f.Metrics.Sum(ERCacheDiagnostics.BackgroundInferences));
        var another = f.GetAsync(300);
        Assert.Equal(2, dispatcher.Pending);
        dispatcher.RunAll();
        await another;
    }

    /// <summary>A model that samples every hit and refreshes at half its TTL, with users 1 and 2 inferred at time 0.</summary>
    private static async Task<CacheFixture> SampledAndRefreshedAsync(int maxConcurrency, ManualInferenceDispatcher dispatcher)
    {
        var f = new CacheFixture(m =>
        {
            m.Inference.MaxConcurrency = maxConcurrency;
            m.Inference.Timeout = TimeSpan.FromMinutes(2);
            m.Freshness = new FreshnessOptions { SampleRate = 1, RefreshAhead = 0.5 };
        }, dispatcher: dispatcher);
        var fill = f.Cache.GetManyAsync(Model, new long[] { 1, 2 }, new float[8], new EmbeddingResult[2]);
        dispatcher.RunAll();
        await fill;
        return f;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Background_work_stops_at_disposal(bool refresh)
    {
        var dispatcher = new ManualInferenceDispatcher();
        var f = new CacheFixture(
            m => m.Freshness = refresh ? new FreshnessOptions { RefreshAhead = 0.5 } : new FreshnessOptions { SampleRate = 1 },
            dispatcher: dispatcher);
        var fill = f.GetAsync(1);
        dispatcher.RunAll();
        await fill;
        f.Tower.Generation = 4;
        f.Clock.Advance(TimeSpan.FromSeconds(40));
        await f.GetAsync(1); // a refresh or a sample is queued
        Assert.Equal(1, dispatcher.Pending);
        var direct = f.Cache.GetTier(Model, TierKind.Direct)!;

        f.Cache.Dispose();
        dispatcher.RunAll(); // the call runs after disposal: nothing is recorded or written
        Assert.Equal(0, f.Metrics.Count(ERCacheDiagnostics.StalenessDrift));
        var row = new float[4];
        Assert.True(direct.TryRead(1, f.Clock.GetTimestamp(), long.MaxValue, row, out _));
        Assert.Equal(0, TestTower.GenerationOf(row)); // not refreshed
        await Assert.ThrowsAsync<ObjectDisposedException>(() => f.Cache.GetAsync(Model, 1, new float[4]).AsTask());
        f.Metrics.Dispose();
    }

}
