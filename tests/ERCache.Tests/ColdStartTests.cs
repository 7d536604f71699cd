using System.Diagnostics.Metrics;
using System.Globalization;
using ERCache.Diagnostics;
using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace ERCache.Tests;

/// <summary>
/// The deadline holds from a process's first request: each test starts a fresh process (ERCache.ColdStartProbe: a
/// 2 ms tower, a 50 ms timeout) and reads the first requests' sources: a request that missed its deadline would be a
/// fallback, so the sources are the check, not milliseconds. Real clock, bounded: five requests, in the soak collection.
/// </summary>
[Collection(Infrastructure.SoakDefinition.Name)]
public sealed class ColdStartTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_first_requests_of_a_new_process_are_fresh_within_the_timeout(bool warmUp)
    {
        var requests = await RunProbeAsync(warmUp ? "warm-up" : "");

        Assert.Equal(5, requests.Count);
        Assert.All(requests, r => Assert.Equal(("Fresh", "None"), (r.Source, r.Cause)));
    }

    [Fact]
    public async Task Warm_up_runs_on_scratch_versions_that_no_meter_dispatcher_or_tower_of_the_cache_sees()
    {
        EmbeddingCache.ForgetWarmedShapes(); // as in a new process: every shape is warmed again
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var factory = services.GetRequiredService<IMeterFactory>();
        long cacheMeasurements = 0, warmUpMeasurements = 0;
        long warmUpResultsBefore = EmbeddingCache.WarmUpResults;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Scope == factory || instrument.Meter.Name == EmbeddingCache.WarmUpMeterName)
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        void Count<T>(Instrument instrument, T value)
        {
            if (instrument.Meter.Scope == factory)
            {
                Interlocked.Increment(ref cacheMeasurements);
            }
            else
            {
                Interlocked.Increment(ref warmUpMeasurements);
            }
        }

        listener.SetMeasurementEventCallback<long>((i, v, _, _) => Count(i, v));
        listener.SetMeasurementEventCallback<int>((i, v, _, _) => Count(i, v));
        listener.SetMeasurementEventCallback<double>((i, v, _, _) => Count(i, v));
        listener.Start();
        var dispatcher = new ManualInferenceDispatcher();
        var tower = new CountingInference();
        var options = new ERCacheOptions();
        options.Models["m"] = new ModelOptions
        {
            Dimensions = 8,
            Direct = new TierOptions { Ttl = TimeSpan.FromMinutes(1), Capacity = 16, Eviction = EvictionStrategy.Sieve, Format = StorageFormat.Float16 },
            Failover = new TierOptions { Ttl = TimeSpan.FromHours(1), Capacity = 16 },
        };

        await using var cache = EmbeddingCache.Create(
            options,
            new Dictionary<string, IEmbeddingInference> { ["m"] = tower },
            new EmbeddingCacheServices { MeterFactory = factory, Dispatcher = dispatcher });

        // The scratch versions ran the whole path, measured on their own meter: eight results for each of the two shapes
        // (Float16-Sieve direct, Float32-Lru failover) and the inline model ...
        Assert.Equal(3 * 8, EmbeddingCache.WarmUpResults - warmUpResultsBefore);
        Assert.True(Interlocked.Read(ref warmUpMeasurements) > 0);
        // ... and nothing of it reached the cache's meter, its (manual) dispatcher, its tower or its models.
        Assert.Equal(0, Interlocked.Read(ref cacheMeasurements));
        Assert.Equal(0, dispatcher.Pending);
        Assert.Equal(0, tower.Calls);
        Assert.Equal(["m"], cache.Models);
    }

    private sealed class CountingInference : IEmbeddingInference
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _calls);
            return ValueTask.CompletedTask;
        }
    }

    private static async Task<List<(double Milliseconds, string Source, string Cause)>> RunProbeAsync(string arguments) =>
        (await ProbeProcess.RunAsync(arguments))
            .Select(line => line.Split(' '))
            .Select(f => (double.Parse(f[0], CultureInfo.InvariantCulture), f[1], f[2]))
            .ToList();
}
