using ERCache.Health;
using ERCache.Inference;
using ERCache.Internal;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>A full regional write queue drops fresh vectors (other hosts then infer them again): the operator is
/// told, a few lines a minute at most, and the health check is degraded while it happened within its
/// window.</summary>
public sealed class RegionalQueueFullTests
{
    private const string Model = "ctr";
    private const int QueueFullEvent = 42;

    [Fact]
    public async Task Values_dropped_by_a_full_queue_are_logged_with_the_count_and_degrade_the_health_check_for_a_window()
    {
        var clock = new FakeTimeProvider();
        var store = new InMemoryRegionalStore(clock);
        var options = new ERCacheOptions
        {
            Models = { [Model] = CacheFixture.DefaultModel(4) },
            Regional = { QueueCapacity = 2, FlushInterval = TimeSpan.FromMinutes(1), Invalidation = false },
        };
        await using var host = new ReloadableCache(options, clock: clock, dispatcher: InferenceDispatcher.Inline, store: store);
        var cache = host.Cache;
        var check = new ERCacheHealthCheck(cache);
        string[] Lines() => host.Logged(QueueFullEvent);
        async Task InferAsync(long first, int users)
        {
            for (long user = first; user < first + users; user++)
            {
                Assert.Equal(EmbeddingSource.Fresh, (await cache.GetAsync(Model, user, new float[4])).Source);
            }
        }

        await InferAsync(1, 2); // fills the queue
        Assert.Empty(Lines());
        Assert.Equal(HealthStatus.Healthy, (await HealthCheckTests.Check(check)).Status);

        await InferAsync(3, 3); // three dropped: one line
        Assert.Contains("(Regional:QueueCapacity 2)", Assert.Single(Lines()), StringComparison.Ordinal);
        Assert.Contains("(0 more dropped since the last such line.)", Lines()[0], StringComparison.Ordinal);
        var full = await HealthCheckTests.Check(check);
        Assert.Equal(HealthStatus.Degraded, full.Status);
        Assert.Contains("regional store: the write queue was full 0 s ago (Regional:QueueCapacity)", full.Description, StringComparison.Ordinal);

        clock.Advance(LogThrottle.Interval);
        await cache.FlushRegionalWritesAsync();
        Assert.Equal(2, store.Count); // what the queue held was written
        await InferAsync(6, 3); // two queued, one dropped: the next line counts the two left out
        Assert.Equal(2, Lines().Length);
        Assert.Contains("(2 more dropped since the last such line.)", Lines()[1], StringComparison.Ordinal);

        clock.Advance(new ERCacheHealthCheckOptions().Window); // nothing dropped for a whole window
        Assert.Equal(HealthStatus.Healthy, (await HealthCheckTests.Check(check)).Status);
    }
}
