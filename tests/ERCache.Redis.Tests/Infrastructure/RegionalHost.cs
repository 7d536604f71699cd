using ERCache.Diagnostics;
using ERCache.Inference;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Redis.Tests.Infrastructure;

/// <summary>One ranking host: a cache with its own towers and clock, sharing a regional store with other hosts.</summary>
internal sealed class RegionalHost : IAsyncDisposable
{
    public const int Dimensions = 8;
    public static readonly DateTimeOffset Start = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);

    public RegionalHost(
        string connectionString, Action<ERCacheOptions>? configure = null, string[]? models = null, TimeProvider? clock = null, string version = "v1",
        InferenceDispatcher? dispatcher = null)
    {
        Clock = clock ?? new FakeTimeProvider(Start);
        var options = new ERCacheOptions { Regional = { Timeout = TimeSpan.FromSeconds(2), FlushInterval = TimeSpan.FromMinutes(1) } };
        foreach (string model in models ?? ["ctr"])
        {
            options.Models[model] = new ModelOptions
            {
                Dimensions = Dimensions,
                Version = version,
                Inference = { Timeout = TimeSpan.FromSeconds(5), CircuitBreaker = { Enabled = false } },
                Direct = { Ttl = TimeSpan.FromMinutes(1), Capacity = 10_000 },
                Failover = { Ttl = TimeSpan.FromHours(1), Capacity = 10_000, Format = StorageFormat.Int8 },
                Regional = { Format = StorageFormat.Float32 },
            };
            Towers[model] = new UserTower();
        }

        configure?.Invoke(options);
        Store = RedisRegionalStore.Connect(connectionString);
        Cache = EmbeddingCache.Create(options, Towers.ToDictionary(t => t.Key, t => (IEmbeddingInference)t.Value), new EmbeddingCacheServices { TimeProvider = Clock, RegionalStore = Store, Dispatcher = dispatcher, Logger = new FakeLogger<EmbeddingCache>(Logs) });
        Reads = new MetricCollector<long>(Cache.Meter, ERCacheDiagnostics.RegionalReads);
        Groups = new MetricCollector<long>(Cache.Meter, ERCacheDiagnostics.RegionalWriteGroups);
        Values = new MetricCollector<long>(Cache.Meter, ERCacheDiagnostics.RegionalWriteValues);
        Dropped = new MetricCollector<long>(Cache.Meter, ERCacheDiagnostics.RegionalWritesDropped);
        Failures = new MetricCollector<long>(Cache.Meter, ERCacheDiagnostics.RegionalFailures);
        Durations = new MetricCollector<double>(Cache.Meter, ERCacheDiagnostics.RegionalDuration);
        Invalidations = new MetricCollector<long>(Cache.Meter, ERCacheDiagnostics.InvalidationMessages);
    }

    public TimeProvider Clock { get; }

    /// <summary>What the cache logged.</summary>
    public FakeLogCollector Logs { get; } = new();

    public FakeTimeProvider FakeClock => (FakeTimeProvider)Clock;

    public Dictionary<string, UserTower> Towers { get; } = [];

    public RedisRegionalStore Store { get; }

    public EmbeddingCache Cache { get; }

    public MetricCollector<long> Reads { get; }

    /// <summary>Invalidation messages, tagged by direction.</summary>
    public MetricCollector<long> Invalidations { get; }

    public MetricCollector<long> Groups { get; }

    public MetricCollector<long> Values { get; }

    public MetricCollector<long> Dropped { get; }

    public MetricCollector<long> Failures { get; }

    /// <summary>Store round trips, seconds, tagged read or write.</summary>
    public MetricCollector<double> Durations { get; }

    /// <summary>The longest regional lookup so far.</summary>
    public TimeSpan SlowestLookup => TimeSpan.FromSeconds(Durations.GetMeasurementSnapshot()
        .Where(m => Equals(m.Tags.GetValueOrDefault(ERCacheDiagnostics.OperationTag), "read")).Select(m => m.Value).DefaultIfEmpty(0).Max());

    public async Task<(EmbeddingResult Result, float[] Vector)> GetAsync(long user, string model = "ctr")
    {
        var vector = new float[Dimensions];
        var result = await Cache.GetAsync(model, user, vector);
        return (result, vector);
    }

    /// <summary>Waits until this host has applied at least <paramref name="count"/> other hosts' invalidation messages
    /// (they arrive on the channel's own thread, after the sender's call returned). The 30 s only bound a hang.</summary>
    /// <remarks>The sum and the count it waits beyond come from one snapshot: read apart, a message applied between the two
    /// reads would leave it waiting for one more that never comes.</remarks>
    public async Task WhenAppliedAsync(int count)
    {
        while (true)
        {
            var seen = Invalidations.GetMeasurementSnapshot();
            if (Sum(seen, "direction", "applied") >= count)
            {
                return;
            }

            await Invalidations.WaitForMeasurementsAsync(seen.Count + 1, TimeSpan.FromSeconds(30));
        }
    }

    public static long Sum(MetricCollector<long> collector, string? tag = null, string? value = null) =>
        Sum(collector.GetMeasurementSnapshot(), tag, value);

    private static long Sum(IReadOnlyList<CollectedMeasurement<long>> measurements, string? tag, string? value) =>
        measurements.Where(m => tag is null || Equals(m.Tags.GetValueOrDefault(tag), value)).Sum(m => m.Value);

    public async ValueTask DisposeAsync()
    {
        await Cache.DisposeAsync();
        await Store.DisposeAsync();
        foreach (var c in new[] { Reads, Groups, Values, Dropped, Failures, Invalidations })
        {
            c.Dispose();
        }

        Durations.Dispose();
    }
}
