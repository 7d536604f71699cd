using ERCache.Health;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Time.Testing;
using static ERCache.Tests.HealthCheckTests;

namespace ERCache.Tests;

/// <summary>The real-thread and real-clock tests of <see cref="HealthCheckTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class HealthCheckTestsSoak
{
    [Fact]
    public async Task Hammer_the_striped_result_count_loses_nothing()
    {
        using var f = new CacheFixture(m => m.Inference.CircuitBreaker = new CircuitBreakerOptions { Enabled = false });
        await Serve(f, 0, 16);
        var check = new ERCacheHealthCheck(f.Cache, new ERCacheHealthCheckOptions { MinimumResults = 1 });
        const int Threads = 8, PerThread = 20_000;
        await Task.WhenAll(Enumerable.Range(0, Threads).Select(t => Task.Run(async () =>
        {
            var vector = new float[4];
            for (int i = 0; i < PerThread; i++)
            {
                long user = (t + i) % 16;
                var result = await f.Cache.GetAsync(Model, user, vector);
                Assert.Equal(EmbeddingSource.Direct, result.Source);
                Assert.True(TestTower.BelongsTo(vector, user));
            }
        })));

        var report = await Check(check);
        Assert.Equal((long)(16 + (Threads * PerThread)), report.Data["ctr.results"]);
        Assert.Equal(0L, report.Data["ctr.fallbacks"]);

        // The requests counter reads the same counts, by source.
        Assert.Equal(16, f.Metrics.Sum("ercache.requests", ("model", Model), ("source", "fresh")));
        Assert.Equal(Threads * PerThread, f.Metrics.Sum("ercache.requests", ("model", Model), ("source", "direct")));
        Assert.Equal(0, f.Metrics.Sum("ercache.requests", ("source", "fallback")));
    }
}
