using System.Diagnostics;
using ERCache.Models;
using Microsoft.Extensions.Time.Testing;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The real-thread and real-clock tests of <see cref="TtlClockTests"/>.</summary>
[Collection(SoakDefinition.Name)]
public sealed class TtlClockTestsSoak
{
    [Fact]
    public void With_the_system_clock_it_is_coarse_and_within_a_few_milliseconds_of_the_precise_clock()
    {
        var clock = new TtlClock(TimeProvider.System);
        Assert.True(clock.IsCoarse);
        long ticksPerMs = Stopwatch.Frequency / 1000;
        for (int i = 0; i < 1000; i++)
        {
            long coarse = clock.Now;
            long precise = Stopwatch.GetTimestamp();

            // Both count from boot on Linux (CLOCK_MONOTONIC and its coarse twin); the coarse one lags by at most a tick
            // of the kernel's clock (1-4 ms), and is in whole milliseconds.
            Assert.Equal(0, coarse % ticksPerMs);
            Assert.InRange((precise - coarse) / (double)ticksPerMs, -1, 20);
        }
    }

    [Fact]
    public async Task A_cache_on_the_system_clock_reports_ages_that_agree_with_elapsed_time()
    {
        var options = new ERCacheOptions();
        options.Models["m"] = Infrastructure.CacheFixture.DefaultModel(4);
        using var cache = EmbeddingCache.Create(options, new Dictionary<string, Inference.IEmbeddingInference> { ["m"] = new Infrastructure.TestTower() });
        var vector = new float[4];
        var stopwatch = Stopwatch.StartNew();
        Assert.Equal(EmbeddingSource.Fresh, (await cache.GetAsync("m", 1, vector)).Source);
        await Task.Delay(30); // real time: the point is the system clock
        var hit = await cache.GetAsync("m", 1, vector);
        var elapsed = stopwatch.Elapsed;
        Assert.Equal(EmbeddingSource.Direct, hit.Source);
        Assert.InRange(hit.Age, TimeSpan.FromMilliseconds(20), elapsed + TimeSpan.FromMilliseconds(20));
    }
}
