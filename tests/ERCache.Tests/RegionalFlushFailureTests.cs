using System.Collections.Concurrent;
using ERCache.Health;
using ERCache.Inference;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace ERCache.Tests;

/// <summary>A background flush that throws (a bug of ours: the store's own failures are dropped writes, counted) loses
/// only what it had taken: the next flush runs as usual, the operator is told, and the health check is degraded for a
/// window.</summary>
public sealed class RegionalFlushFailureTests
{
    private const string Model = "ctr";
    private const int FlushFailedEvent = 22;

    [Fact]
    public async Task A_flush_that_throws_is_logged_and_judged_and_the_next_flush_still_writes_and_announces_only_its_own_pushes()
    {
        var options = new ERCacheOptions
        {
            Models = { [Model] = CacheFixture.DefaultModel(4) },
            Regional = { FlushInterval = TimeSpan.FromSeconds(1), Invalidation = false },
        };
        var store = new InMemoryRegionalStore();
        await using var host = new ReloadableCache(options, dispatcher: InferenceDispatcher.Inline, store: store);
        var cache = host.Cache;
        var check = new ERCacheHealthCheck(cache);
        var announced = new ConcurrentQueue<long>();
        bool broken = true;
        cache.RegionalTier!.PushWritten = (user, _) =>
        {
            announced.Enqueue(user);
            if (Volatile.Read(ref broken))
            {
                throw new InvalidOperationException("a bug while announcing");
            }
        };

        cache.SetVector(Model, 1, [1, 2, 3, 4]);
        cache.SetVector(Model, 2, [2, 3, 4, 5]); // one batch: the first announcement throws
        host.Clock.Advance(options.Regional.FlushInterval);
        await Poll.Until(() => host.Logged(FlushFailedEvent).Length == 1, "the failed flush was not logged");
        Assert.Equal(2, store.Count); // written before the announcement failed
        Assert.Contains("(0 more since the last such line.)", host.Logged(FlushFailedEvent)[0], StringComparison.Ordinal);
        var failed = await HealthCheckTests.Check(check);
        Assert.Equal(HealthStatus.Degraded, failed.Status);
        Assert.Contains("regional store: a background flush failed 0 s ago", failed.Description, StringComparison.Ordinal);

        Volatile.Write(ref broken, false);
        Assert.Equal(EmbeddingSource.Fresh, (await cache.GetAsync(Model, 3, new float[4])).Source); // queued, not a push
        cache.SetVector(Model, 4, [4, 5, 6, 7]);
        host.Clock.Advance(options.Regional.FlushInterval); // the loop is still there
        await Poll.Until(() => announced.Contains(4), "the next flush did not run");
        Assert.Equal(4, store.Count);
        Assert.Equal([1, 4], announced); // user 2's push, left from the failed batch, is not announced by this one

        host.Clock.Advance(new ERCacheHealthCheckOptions().Window);
        Assert.Equal(HealthStatus.Healthy, (await HealthCheckTests.Check(check)).Status);
        Assert.Single(host.Logged(FlushFailedEvent));
    }
}
