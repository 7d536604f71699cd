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
        using var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["ctr"] = faults }, new EmbeddingCacheServices { TimeProvider = clock });
        var rng = new Random(3);
        var counts = new Dictionary<EmbeddingSource, int>();

        for (int round = 0; round < 300; round++)
        {
            var users = Enumerable.Range(0, 4).Select(_ => (long)rng.Next(50)).ToArray();
            var vectors = new float[16];
            var results = new EmbeddingResult[4];
            var pending = cache.GetManyAsync("ctr", users, vectors, results).AsTask();
            for (int spin = 0; spin < 200 && !pending.IsCompleted; spin++)
            {
                clock.Advance(TimeSpan.FromMilliseconds(10)); // deadlines and hard limits pass for hung calls
                await Task.Yield();
            }

            await pending.WaitAsync(TimeSpan.FromSeconds(10));
            for (int i = 0; i < 4; i++)
            {
                counts[results[i].Source] = counts.GetValueOrDefault(results[i].Source) + 1;
                if (results[i].HasVector)
                {
                    Assert.True(TestTower.BelongsTo(vectors.AsSpan(i * 4, 4), users[i]));
                }
            }

            clock.Advance(TimeSpan.FromSeconds(20));

            // Past every hard limit, hung calls are cancelled and return. Calls run on other threads and may start after
            // an advance, so the clock keeps moving until every call has returned (no caller waits for them).
            for (int wait = 0; wait < 2000 && cache.GetInFlight("ctr") > 0; wait++)
            {
                clock.Advance(TimeSpan.FromSeconds(20));
                await Task.Delay(1);
            }

            Assert.Equal(0, cache.GetInFlight("ctr"));
        }

        Assert.True(faults.Injected > 50, $"only {faults.Injected} faults injected");
        Assert.True(counts.GetValueOrDefault(EmbeddingSource.Failover) > 0);
        Assert.True(counts.GetValueOrDefault(EmbeddingSource.Fresh) > 0);
        Assert.True(counts.GetValueOrDefault(EmbeddingSource.Direct) > 0);
    }

}
