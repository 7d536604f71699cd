using System.Diagnostics.Metrics;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

public sealed class MetricsTests
{
    [Fact]
    public async Task Counts_observed_through_a_MeterListener_match_what_the_test_did()
    {
        using var f = new CacheFixture();
        await f.GetAsync(1);                                        // fresh
        await f.GetAsync(2);                                        // fresh
        f.Clock.Advance(TimeSpan.FromSeconds(20));
        await f.GetAsync(1);                                        // direct, age 20 s
        await f.GetAsync(1);                                        // direct, age 20 s
        f.Clock.Advance(TimeSpan.FromMinutes(2));
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("down");
        await f.GetAsync(2);                                        // failover, age 140 s
        await f.GetAsync(3);                                        // fallback
        f.Tower.Whole = (b, _) => { b.Destination.Span.Fill(float.NaN); return ValueTask.CompletedTask; };
        await f.GetAsync(4);                                        // fallback, invalid vector

        var m = f.Metrics;
        Assert.Equal(2, m.Sum("ercache.requests", ("model", "ctr"), ("source", "fresh")));
        Assert.Equal(2, m.Sum("ercache.requests", ("model", "ctr"), ("source", "direct")));
        Assert.Equal(1, m.Sum("ercache.requests", ("model", "ctr"), ("source", "failover")));
        Assert.Equal(2, m.Sum("ercache.requests", ("model", "ctr"), ("source", "fallback")));
        Assert.Equal(5, m.Sum("ercache.inference.calls", ("model", "ctr")));
        Assert.Equal(5, m.Sum("ercache.inference.users", ("model", "ctr")));
        Assert.Equal(2, m.Sum("ercache.inference.failures", ("model", "ctr"), ("cause", "error")));
        Assert.Equal(1, m.Sum("ercache.inference.failures", ("model", "ctr"), ("cause", "invalid_vector")));
        Assert.Equal(2, m.Count("ercache.vector.age", ("source", "direct")));
        Assert.Equal(40, m.Sum("ercache.vector.age", ("source", "direct")), 6);
        Assert.Equal(140, m.Sum("ercache.vector.age", ("source", "failover")), 6);
        Assert.Equal(0, m.Sum("ercache.vector.age", ("source", "fresh")));
        Assert.Equal(0, m.Count("ercache.vector.age", ("source", "fallback")));
    }

    [Fact]
    public void Every_histogram_advises_buckets_fitted_to_its_unit_and_range()
    {
        // OpenTelemetry's default buckets (0, 5, 10, ... 10000) suit milliseconds: every inference in seconds would land
        // in the first. Each histogram names its own boundaries.
        // Concurrent: other tests' caches publish their instruments to every listener from their own threads.
        var advice = new System.Collections.Concurrent.ConcurrentDictionary<string, IReadOnlyList<double>>();
        using var listener = new System.Diagnostics.Metrics.MeterListener
        {
            InstrumentPublished = (instrument, _) =>
            {
                if (instrument.Meter.Name == Diagnostics.ERCacheDiagnostics.MeterName)
                {
                    switch (instrument)
                    {
                        case System.Diagnostics.Metrics.Histogram<double> h:
                            advice[h.Name] = h.Advice?.HistogramBucketBoundaries ?? [];
                            break;
                        case System.Diagnostics.Metrics.Histogram<int> h:
                            advice[h.Name] = [.. (h.Advice?.HistogramBucketBoundaries ?? []).Select(b => (double)b)];
                            break;
                    }
                }
            },
        };
        listener.Start();
        using var f = new CacheFixture();

        Assert.Equal(
            ["ercache.inference.batch_size", "ercache.inference.duration", "ercache.invalidation.lag", "ercache.regional.duration", "ercache.staleness.drift", "ercache.vector.age"],
            advice.Keys.Order(StringComparer.Ordinal));
        foreach (string seconds in new[] { "ercache.inference.duration", "ercache.invalidation.lag", "ercache.regional.duration" })
        {
            Assert.Equal(1e-5, advice[seconds][0]); // 10 µs
            Assert.Equal(10, advice[seconds][^1]); // 10 s
        }

        Assert.Equal(1e-6, advice["ercache.staleness.drift"][0]);
        Assert.Equal(1, advice["ercache.staleness.drift"][^1]);
        Assert.Equal(86_400, advice["ercache.vector.age"][^1]); // a day
        Assert.Equal(1024, advice["ercache.inference.batch_size"][^1]);
        Assert.All(advice.Values, b => Assert.True(b.Zip(b.Skip(1)).All(p => p.First < p.Second), "boundaries ascend"));
    }

    [Fact]
    public async Task Inference_instruments_record_batch_sizes_durations_and_in_flight_calls()
    {
        using var f = new CacheFixture(m => m.Inference.MaxBatchSize = 16);
        var gate = new TaskCompletionSource();
        f.Tower.Gate = gate.Task;
        var users = Enumerable.Range(0, 20).Select(u => (long)u).ToArray();

        var pending = f.Cache.GetManyAsync(CacheFixture.Model, users, new float[80], new EmbeddingResult[20]).AsTask();
        Assert.True(f.Tower.CallCount >= 2);

        f.Metrics.RecordObservables();
        double inFlightDuring = f.Metrics.Matching("ercache.inference.in_flight", ("model", "ctr")).Last().Value;
        f.Clock.Advance(TimeSpan.FromMilliseconds(3));
        gate.SetResult();
        await pending;

        Assert.Equal(2, inFlightDuring);
        Assert.Equal([4.0, 16.0], f.Metrics.Matching("ercache.inference.batch_size", ("model", "ctr")).Select(m => m.Value).Order());
        Assert.Equal(2, f.Metrics.Count("ercache.inference.duration", ("model", "ctr"), ("cause", "none")));
        Assert.All(f.Metrics.Matching("ercache.inference.duration"), m => Assert.Equal(0.003, m.Value, 6));
    }

    [Fact]
    public async Task Entries_gauge_reports_each_tier()
    {
        using var f = new CacheFixture(m => m.Direct.Capacity = 2);
        foreach (long u in new long[] { 1, 2, 3 })
        {
            await f.GetAsync(u);
        }

        f.Metrics.RecordObservables();

        Assert.Equal(2, f.Metrics.Sum("ercache.entries", ("model", "ctr"), ("tier", "direct")));
        Assert.Equal(3, f.Metrics.Sum("ercache.entries", ("model", "ctr"), ("tier", "failover")));
        Assert.Equal(1, f.Metrics.Sum("ercache.evictions", ("model", "ctr"), ("tier", "direct")));
        Assert.Equal(1, f.Metrics.Sum("ercache.evictions", ("tier", "direct"), ("reason", "capacity")));
        Assert.Equal(0, f.Metrics.Sum("ercache.evictions", ("tier", "failover")));
        Assert.Equal(
            f.Cache.GetTierStatistics("ctr", TierKind.Direct)!.Value.AllocatedBytes,
            f.Metrics.Sum("ercache.tier.bytes", ("model", "ctr"), ("tier", "direct")));
        Assert.True(f.Metrics.Sum("ercache.tier.bytes", ("model", "ctr"), ("tier", "failover")) > 3 * 4 * sizeof(float));
    }

    [Fact]
    public async Task Tags_are_bounded_and_never_carry_a_user_id()
    {
        using var f = new CacheFixture();
        for (long u = 1000; u < 1100; u++)
        {
            await f.GetAsync(u);
        }

        f.Metrics.RecordObservables();
        var keys = f.Metrics.Measurements.SelectMany(m => m.Tags.Keys).ToHashSet();
        var values = f.Metrics.Measurements.SelectMany(m => m.Tags.Values).ToHashSet();

        Assert.Subset(new HashSet<string> { "model", "tier", "source", "cause" }, keys);
        Assert.DoesNotContain(values, v => long.TryParse(v, out _));
    }

    [Fact]
    public async Task Requests_are_read_from_the_counts_when_a_listener_collects_not_measured_per_request()
    {
        using var f = new CacheFixture();
        var totals = new Dictionary<string, long>(StringComparer.Ordinal);
        int events = 0;
        Instrument? requests = null;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, f.Cache.Meter) && instrument.Name == ERCacheDiagnostics.Requests)
                {
                    requests = instrument;
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            events++;
            foreach (var tag in tags)
            {
                if (tag.Key == ERCacheDiagnostics.SourceTag)
                {
                    totals[(string)tag.Value!] = value;
                }
            }
        });
        listener.Start();

        await f.GetAsync(1); // fresh
        for (int i = 0; i < 5; i++)
        {
            await f.GetAsync(1); // direct
        }

        // Nothing was measured per request: the hits cost the listener nothing ...
        Assert.True(requests!.IsObservable);
        Assert.Equal(0, events);

        // ... and a collection reads the totals, cumulative from one collection to the next.
        listener.RecordObservableInstruments();
        Assert.Equal(new Dictionary<string, long> { ["fresh"] = 1, ["direct"] = 5 }, totals);
        await f.GetAsync(1);
        listener.RecordObservableInstruments();
        Assert.Equal(6, totals["direct"]);
        Assert.Equal(1, totals["fresh"]);
    }

    [Fact]
    public async Task Requests_keep_counting_across_a_version_change()
    {
        await using var host = new ReloadableCache(new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } }, dispatcher: InferenceDispatcher.Inline);
        var cache = host.Cache;
        using var metrics = new CacheMetrics(cache.Meter);
        var vector = new float[4];
        await cache.GetAsync("ctr", 1, vector); // fresh, v1
        await cache.GetAsync("ctr", 1, vector); // direct, v1
        Assert.Equal(2, metrics.Sum(ERCacheDiagnostics.Requests, ("model", "ctr")));

        var v2 = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        v2.Models["ctr"].Version = "v2";
        host.Reload(v2);
        var result = await cache.GetAsync("ctr", 1, vector); // fresh, v2: nothing of v1 is served
        Assert.Equal((EmbeddingSource.Fresh, "v2"), (result.Source, result.ModelVersion));

        // A counter never goes back: the new version adds to the model's totals.
        Assert.Equal(2, metrics.Sum(ERCacheDiagnostics.Requests, ("model", "ctr"), ("source", "fresh")));
        Assert.Equal(1, metrics.Sum(ERCacheDiagnostics.Requests, ("model", "ctr"), ("source", "direct")));
    }

    [Fact]
    public void The_meter_is_named_ERCache()
    {
        using var f = new CacheFixture();
        Assert.Equal("ERCache", f.Cache.Meter.Name);
    }
}
