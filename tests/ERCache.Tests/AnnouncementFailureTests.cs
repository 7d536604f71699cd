using ERCache.Health;
using ERCache.Inference;
using ERCache.Internal;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>A push or clear this host could not announce leaves the other hosts serving what it replaced until their
/// TTL (DESIGN §2 rule 11): the operator is told which, a few lines a minute at most, and the health check is degraded
/// while it happened within its window.</summary>
public sealed class AnnouncementFailureTests
{
    private const string Model = "ctr";
    private const int NotSentEvent = 37;

    [Fact]
    public async Task Pushes_and_clears_not_announced_are_logged_with_the_count_and_degrade_the_health_check_for_a_window()
    {
        var clock = new FakeTimeProvider();
        var store = new FailingChannel(new InMemoryRegionalStore(clock));
        var options = new ERCacheOptions { Models = { [Model] = CacheFixture.DefaultModel(4) } };
        await using var host = new ReloadableCache(options, clock: clock, dispatcher: InferenceDispatcher.Inline, store: store);
        var cache = host.Cache;
        await cache.WhenReadyAsync(); // subscribed
        var check = new ERCacheHealthCheck(cache);
        string[] Lines() => host.Logged(NotSentEvent);
        string field = RegionalValue.Field(Model, options.Models[Model].Version);

        cache.Clear(Model); // announced
        Assert.Empty(Lines());
        Assert.Equal(HealthStatus.Healthy, (await HealthCheckTests.Check(check)).Status);

        store.PublishFails = true;
        cache.Clear(Model);
        cache.Clear(Model);
        cache.Clear(Model); // three not sent: one line
        Assert.Contains($"could not announce a clear of '{field}'", Assert.Single(Lines()), StringComparison.Ordinal);
        Assert.Contains("(0 more not sent since the last such line.)", Lines()[0], StringComparison.Ordinal);
        var failed = await HealthCheckTests.Check(check);
        Assert.Equal(HealthStatus.Degraded, failed.Status);
        Assert.Contains("invalidation: a push or clear could not be announced 0 s ago", failed.Description, StringComparison.Ordinal);

        clock.Advance(LogThrottle.Interval);
        cache.SetVector(Model, 5, [5, 6, 7, 8]);
        await cache.FlushRegionalWritesAsync(); // in the store, then announced: not sent
        Assert.Equal(2, Lines().Length);
        Assert.Contains($"could not announce a push of user 5 ('{field}')", Lines()[1], StringComparison.Ordinal);
        Assert.Contains("(2 more not sent since the last such line.)", Lines()[1], StringComparison.Ordinal);

        store.PublishFails = false;
        clock.Advance(new ERCacheHealthCheckOptions().Window - TimeSpan.FromSeconds(1));
        Assert.Equal(HealthStatus.Degraded, (await HealthCheckTests.Check(check)).Status); // within the window
        clock.Advance(TimeSpan.FromSeconds(1));
        cache.Clear(Model); // announced again
        Assert.Equal(HealthStatus.Healthy, (await HealthCheckTests.Check(check)).Status);
        Assert.Equal(2, Lines().Length);
    }

    /// <summary>The in-memory store, whose channel refuses to publish while <see cref="PublishFails"/> (a connection
    /// lost between the store's write and the announcement).</summary>
    private sealed class FailingChannel(InMemoryRegionalStore inner) : WrappedRegionalStore(inner)
    {
        public bool PublishFails { get; set; }

        public override Task PublishAsync(byte[] message, CancellationToken cancellationToken) =>
            PublishFails ? Task.FromException(new IOException("connection lost")) : Inner.PublishAsync(message, cancellationToken);
    }
}
