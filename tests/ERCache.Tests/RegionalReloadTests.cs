using ERCache.Diagnostics;
using ERCache.Regional;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Polly.CircuitBreaker;

namespace ERCache.Tests;

/// <summary>A reload's <c>Regional:Timeout</c>, <c>WriteTimeout</c>, <c>MaxBatchSize</c>, <c>QueueCapacity</c>,
/// <c>MaxClockSkew</c>, <c>FlushInterval</c> and <c>CircuitBreaker</c> apply to the regional tier's next calls; the
/// settings read once are logged, not applied.</summary>
public sealed class RegionalReloadTests
{
    private const string Field = "ctr:v1";

    [Fact]
    public async Task A_reloaded_Timeout_bounds_the_next_lookup_and_not_the_one_running()
    {
        var clock = new FakeTimeProvider();
        var store = new GatedRegionalStore(clock);
        using var metrics = new ERCacheMetrics(null);
        await using var tier = new RegionalTier(store, new RegionalOptions { Timeout = TimeSpan.FromMilliseconds(5) }, clock, metrics, NullLogger.Instance);
        store.HoldReads();

        var running = tier.ReadAsync(Field, 40, [1], TimeSpan.FromSeconds(1), CancellationToken.None);
        Assert.True(await store.NextHeldReadAsync());
        tier.Apply(new RegionalOptions { Timeout = TimeSpan.FromMilliseconds(50) });
        var next = tier.ReadAsync(Field, 40, [2], TimeSpan.FromSeconds(1), CancellationToken.None);
        Assert.True(await store.NextHeldReadAsync());

        clock.Advance(TimeSpan.FromMilliseconds(5));
        Assert.Null(await running.WaitAsync(TimeSpan.FromSeconds(10))); // its own 5 ms
        Assert.False(next.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(45));
        Assert.Null(await next.WaitAsync(TimeSpan.FromSeconds(10))); // the reloaded 50 ms
        Assert.Equal(TimeSpan.FromMilliseconds(50), tier.ReadTimeout);
    }

    [Fact]
    public async Task A_reloaded_MaxBatchSize_splits_the_next_lookup()
    {
        var clock = new FakeTimeProvider();
        var store = new GatedRegionalStore(clock);
        using var metrics = new ERCacheMetrics(null);
        await using var tier = new RegionalTier(store, new RegionalOptions { MaxBatchSize = 4 }, clock, metrics, NullLogger.Instance);
        long[] users = [.. Enumerable.Range(1, 10).Select(u => (long)u)];

        await tier.ReadAsync(Field, 40, users, TimeSpan.FromSeconds(1), CancellationToken.None);
        int before = store.Inner.Reads;
        tier.Apply(new RegionalOptions { MaxBatchSize = 16 });
        await tier.ReadAsync(Field, 40, users, TimeSpan.FromSeconds(1), CancellationToken.None);

        Assert.Equal(3, before); // 4 + 4 + 2
        Assert.Equal(1, store.Inner.Reads - before);
    }

    [Fact]
    public async Task A_reloaded_QueueCapacity_bounds_the_next_values_queued_and_MaxClockSkew_applies()
    {
        var clock = new FakeTimeProvider();
        using var metrics = new ERCacheMetrics(null);
        await using var tier = new RegionalTier(
            new GatedRegionalStore(clock), new RegionalOptions { QueueCapacity = 2, FlushInterval = TimeSpan.FromHours(1) }, clock, metrics, NullLogger.Instance);
        bool Queue(long user) => tier.TryEnqueue(new PendingWrite(Field, StorageFormat.Float32, 0, user, 0, [1f], TimeSpan.FromHours(1)));

        bool[] first = [Queue(1), Queue(2), Queue(3)];
        tier.Apply(new RegionalOptions { QueueCapacity = 4, MaxClockSkew = TimeSpan.FromSeconds(3) });
        bool[] second = [Queue(4), Queue(5), Queue(6)];
        tier.Apply(new RegionalOptions { QueueCapacity = 1 }); // below what is queued: nothing more until it drains
        bool third = Queue(7);

        Assert.Equal([true, true, false], first);
        Assert.Equal([true, true, false], second);
        Assert.False(third);
        Assert.Equal(4, tier.QueueLength);
        Assert.Equal(1_000, tier.MaxClockSkewMs); // the last reload's default
    }

    [Fact]
    public async Task A_shortened_FlushInterval_flushes_one_new_interval_after_the_reload()
    {
        var clock = new FakeTimeProvider();
        var store = new GatedRegionalStore(clock) { WriteGate = new TaskCompletionSource() };
        using var metrics = new ERCacheMetrics(null);
        await using var tier = new RegionalTier(store, new RegionalOptions { FlushInterval = TimeSpan.FromMinutes(1) }, clock, metrics, NullLogger.Instance);
        Assert.True(tier.TryEnqueue(new PendingWrite(Field, StorageFormat.Float32, 0, 1, 0, [1f], TimeSpan.FromHours(1))));

        tier.Apply(new RegionalOptions { FlushInterval = TimeSpan.FromSeconds(1) });
        clock.Advance(TimeSpan.FromSeconds(1)); // with the built minute, nothing would be due until 00:01:00
        try
        {
            await store.WriteHeld.WaitAsync(TimeSpan.FromSeconds(10)); // the background flush reached the store
            Assert.Equal(1, store.WritesStarted);
        }
        finally
        {
            store.WriteGate.TrySetResult(); // else the disposal's last flush would wait for the gate on a clock that stands still
        }
    }

    [Fact]
    public async Task A_reloaded_WriteTimeout_bounds_the_next_removal()
    {
        var clock = new FakeTimeProvider();
        var store = new GatedRegionalStore(clock) { RemovalGate = new TaskCompletionSource() };
        using var metrics = new ERCacheMetrics(null);
        await using var tier = new RegionalTier(store, new RegionalOptions { WriteTimeout = TimeSpan.FromSeconds(1) }, clock, metrics, NullLogger.Instance);

        tier.Apply(new RegionalOptions { WriteTimeout = TimeSpan.FromSeconds(3) });
        var removal = tier.RemoveAsync(7, Field, TimeSpan.FromHours(1), CancellationToken.None);
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.False(removal.IsCompleted); // the built 1 s no longer bounds it
        clock.Advance(TimeSpan.FromSeconds(2));

        await Assert.ThrowsAsync<TimeoutException>(() => removal.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(TimeSpan.FromSeconds(3), tier.WriteTimeout);
        store.RemovalGate.SetResult();
    }

    [Fact]
    public async Task A_reloaded_breaker_starts_closed_when_its_settings_change_and_keeps_its_state_when_they_do_not()
    {
        var clock = new FakeTimeProvider();
        using var metrics = new ERCacheMetrics(null);
        static RegionalOptions With(bool enabled, int minimumThroughput) => new()
        {
            CircuitBreaker = new CircuitBreakerOptions { Enabled = enabled, FailureRatio = 0.5, MinimumThroughput = minimumThroughput },
        };
        await using var tier = new RegionalTier(new ThrowingRegionalStore(), With(enabled: false, minimumThroughput: 2), clock, metrics, NullLogger.Instance);
        Assert.Null(tier.CircuitState);

        tier.Apply(With(enabled: true, minimumThroughput: 2));
        for (int i = 0; i < 2; i++)
        {
            Assert.Null(await tier.ReadAsync(Field, 40, [1], TimeSpan.FromSeconds(1), CancellationToken.None));
        }

        Assert.Equal(CircuitState.Open, tier.CircuitState);
        tier.Apply(With(enabled: true, minimumThroughput: 2)); // the same settings: the same breaker
        Assert.Equal(CircuitState.Open, tier.CircuitState);
        tier.Apply(With(enabled: true, minimumThroughput: 3));
        Assert.Equal(CircuitState.Closed, tier.CircuitState);
        tier.Apply(With(enabled: false, minimumThroughput: 3));
        Assert.Null(tier.CircuitState);
    }

    [Fact]
    public void A_reload_applies_the_regional_timeouts_and_logs_only_the_settings_read_once()
    {
        using var host = new ReloadableCache(new ERCacheOptions { Models = { ["ctr"] = CacheFixture.DefaultModel(4) } }, store: new ERCache.Testing.InMemoryRegionalStore());

        host.Reload(new ERCacheOptions
        {
            Models = { ["ctr"] = CacheFixture.DefaultModel(4) },
            Regional = new RegionalOptions
            {
                Timeout = TimeSpan.FromMilliseconds(20), WriteTimeout = TimeSpan.FromSeconds(2), MaxBatchSize = 64, QueueCapacity = 10,
                MaxClockSkew = TimeSpan.FromSeconds(2), FlushInterval = TimeSpan.FromSeconds(1), KeyPrefix = "ercache:other",
                CircuitBreaker = new CircuitBreakerOptions { Enabled = false },
            },
        });

        var ignored = host.Logs.GetSnapshot().Where(r => r.Id.Id == 38).ToArray();
        Assert.Equal("ERCache:Regional:KeyPrefix", Assert.Single(ignored).StructuredState!.Single(p => p.Key == "Setting").Value);
        var tier = host.Cache.RegionalTier!;
        Assert.Equal(TimeSpan.FromMilliseconds(20), tier.ReadTimeout);
        Assert.Equal(TimeSpan.FromSeconds(2), tier.WriteTimeout);
        Assert.Equal(2_000, tier.MaxClockSkewMs);
        Assert.Null(tier.CircuitState);
    }

    [Fact]
    public void An_invalid_regional_setting_rejects_the_whole_reload()
    {
        var model = CacheFixture.DefaultModel(4);
        using var host = new ReloadableCache(new ERCacheOptions { Models = { ["ctr"] = model } }, store: new ERCache.Testing.InMemoryRegionalStore());
        var reloaded = CacheFixture.DefaultModel(4);
        reloaded.Direct.Ttl = TimeSpan.FromMinutes(7);

        host.Reload(new ERCacheOptions
        {
            Models = { ["ctr"] = reloaded },
            Regional = new RegionalOptions { Timeout = TimeSpan.FromMilliseconds(50), WriteTimeout = TimeSpan.Zero },
        });

        Assert.Equal(new RegionalOptions().Timeout, host.Cache.RegionalTier!.ReadTimeout); // its valid part not applied either
        Assert.Equal(model.Direct.Ttl, host.Cache.GetPolicy("ctr").Direct.Ttl);
    }

    [Fact]
    public async Task A_reloaded_WriteTimeout_bounds_the_next_announcement_to_the_other_hosts()
    {
        static ERCacheOptions With(TimeSpan writeTimeout) =>
            new() { Models = { ["ctr"] = CacheFixture.DefaultModel(4) }, Regional = new RegionalOptions { WriteTimeout = writeTimeout } };
        var clock = new FakeTimeProvider();
        using var host = new ReloadableCache(With(TimeSpan.FromSeconds(1)), clock: clock, store: new SilentChannel(new ERCache.Testing.InMemoryRegionalStore(clock)));

        host.Reload(With(TimeSpan.FromSeconds(3)));
        var removal = host.Cache.RemoveAsync("ctr", 7); // deleted from the store at once; its announcement is never answered
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.False(removal.IsCompleted); // the built 1 s no longer bounds the announcement
        clock.Advance(TimeSpan.FromSeconds(2));

        await Assert.ThrowsAsync<TimeoutException>(() => removal.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    /// <summary>The in-memory store with a channel whose messages are never answered (a publish waits until cancelled).</summary>
    private sealed class SilentChannel(ERCache.Testing.InMemoryRegionalStore inner) : WrappedRegionalStore(inner)
    {
        public override Task PublishAsync(byte[] message, CancellationToken cancellationToken) => Task.Delay(Timeout.Infinite, cancellationToken);
    }
}
