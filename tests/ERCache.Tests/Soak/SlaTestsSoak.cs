using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>The real-thread tests of <see cref="SlaTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class SlaTestsSoak
{
    [Fact]
    public async Task No_injected_fault_escapes_as_an_exception()
    {
        var clock = new FakeTimeProvider();
        var faults = new FaultInjectingInference(new TestTower(), new FaultSettings
        {
            ErrorRate = 0.2, HangRate = 0.05, NaNRate = 0.1, InfinityRate = 0.1, WrongLengthRate = 0.1,
        }, clock, seed: 7);
        var options = new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } };
        options.Models["ctr"].Inference.HardTimeout = TimeSpan.FromMilliseconds(200);

        // Every delegate call runs on this thread when the test says so, and time moves only when the test advances
        // it: a hung call ends exactly when the clock passes its hard limit, whatever the machine's load.
        var dispatcher = new ManualInferenceDispatcher();
        using var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = faults }, new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = dispatcher });
        var rng = new Random(3);
        var counts = new Dictionary<EmbeddingSource, int>();

        for (int round = 0; round < 300; round++)
        {
            var users = Enumerable.Range(0, 4).Select(_ => (long)rng.Next(50)).ToArray();
            var vectors = new float[16];
            var results = new EmbeddingResult[4];
            var pending = cache.GetManyAsync("ctr", users, vectors, results).AsTask();
            for (int step = 0; step < 100 && !pending.IsCompleted; step++)
            {
                dispatcher.RunAll();
                clock.Advance(TimeSpan.FromMilliseconds(10)); // deadlines and hard limits pass for hung calls
            }

            await pending.WaitAsync(TimeSpan.FromMinutes(1)); // a guard against a hang, not a bound on time
            for (int i = 0; i < 4; i++)
            {
                counts[results[i].Source] = counts.GetValueOrDefault(results[i].Source) + 1;
                if (results[i].HasVector)
                {
                    Assert.True(TestTower.BelongsTo(vectors.AsSpan(i * 4, 4), users[i]));
                }
            }

            // Past every hard limit, the calls the request left behind are cancelled and return; the scheduler says
            // when the last one has (their continuations may finish on other threads).
            dispatcher.RunAll();
            clock.Advance(TimeSpan.FromSeconds(20));
            dispatcher.RunAll();
            await cache.WhenIdleAsync("ctr").WaitAsync(TimeSpan.FromMinutes(1));
            Assert.Equal(0, dispatcher.Pending);
        }

        Assert.True(faults.Injected > 50, $"only {faults.Injected} faults injected");
        Assert.True(counts.GetValueOrDefault(EmbeddingSource.Failover) > 0);
        Assert.True(counts.GetValueOrDefault(EmbeddingSource.Fresh) > 0);
        Assert.True(counts.GetValueOrDefault(EmbeddingSource.Direct) > 0);
    }

}
