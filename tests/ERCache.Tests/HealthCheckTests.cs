using ERCache.Health;
using ERCache.Inference;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>The health check follows the circuit and the fallback share over its window.</summary>
public sealed class HealthCheckTests
{
    internal const string Model = CacheFixture.Model;

    internal static Task<HealthCheckResult> Check(ERCacheHealthCheck check) =>
        check.CheckHealthAsync(new HealthCheckContext { Registration = new HealthCheckRegistration("ercache", check, null, null) });

    internal static async Task Serve(CacheFixture f, long firstUser, int count)
    {
        for (long u = firstUser; u < firstUser + count; u++)
        {
            await f.GetAsync(u);
        }
    }

    [Fact]
    public async Task Degraded_with_one_warning_while_every_slot_is_held_by_an_abandoned_call_and_healthy_once_it_returns()
    {
        // A tower that hangs and ignores its token: its call passes the hard timeout and is abandoned, but keeps the
        // model's only slot. Every later miss is shed; the operator is told, once, and the health check says why.
        var clock = new FakeTimeProvider();
        var logs = new FakeLogCollector();
        var hang = new TaskCompletionSource();
        var tower = new TestTower { Gate = hang.Task };
        var model = CacheFixture.DefaultModel(4);
        model.Inference.MaxConcurrency = 1;
        model.Inference.Timeout = TimeSpan.FromMilliseconds(50);
        model.Inference.HardTimeout = TimeSpan.FromMilliseconds(200);
        TestThread.LeaveSynchronizationContext();
        using var cache = EmbeddingCache.Create(
            new ERCacheOptions { Models = { [Model] = model } }, new Dictionary<string, IEmbeddingInference> { [Model] = tower },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, Logger = new FakeLogger<EmbeddingCache>(logs) });
        var check = new ERCacheHealthCheck(cache, new ERCacheHealthCheckOptions { FallbackShareThreshold = 1 });
        int Warnings() => logs.GetSnapshot().Count(r => r.Id.Id == 28);

        var first = cache.GetAsync(Model, 1, new float[4]).AsTask();
        clock.Advance(TimeSpan.FromMilliseconds(50));
        Assert.Equal(InferenceFailureCause.Timeout, (await first).FailureCause);
        Assert.Equal(HealthStatus.Healthy, (await Check(check)).Status); // slow, not stuck yet
        clock.Advance(TimeSpan.FromMilliseconds(150)); // the hard timeout: the call is abandoned, its slot still held

        var stuck = await Check(check);
        Assert.Equal(HealthStatus.Degraded, stuck.Status);
        Assert.Contains("model 'ctr': all 1 inference slot(s) are held by calls past their hard timeout", stuck.Description, StringComparison.Ordinal);
        Assert.Equal(1, stuck.Data["ctr.abandoned_calls"]);
        Assert.Equal(1, Warnings());
        Assert.Contains("Every inference slot of model 'ctr' (1) is held", logs.GetSnapshot().Single(r => r.Id.Id == 28).Message, StringComparison.Ordinal);
        var shed = cache.GetAsync(Model, 2, new float[4]).AsTask();
        clock.Advance(TimeSpan.FromMilliseconds(50));
        Assert.Equal(InferenceFailureCause.Overload, (await shed).FailureCause);

        hang.SetResult(); // the delegate finally returns: its slot is free again
        var healthy = await Check(check);
        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.Equal(0, healthy.Data["ctr.abandoned_calls"]);
        Assert.Equal(1, Warnings());
    }

    [Fact]
    public async Task Degraded_while_the_circuit_is_open_and_healthy_once_it_closes()
    {
        using var f = new CacheFixture(m => m.Inference.CircuitBreaker = new CircuitBreakerOptions
        {
            FailureRatio = 0.5, MinimumThroughput = 4, SamplingDuration = TimeSpan.FromSeconds(30), BreakDuration = TimeSpan.FromSeconds(5),
        });
        var check = new ERCacheHealthCheck(f.Cache, new ERCacheHealthCheckOptions { FallbackShareThreshold = 1 });
        Assert.Equal(HealthStatus.Healthy, (await Check(check)).Status);

        f.Tower.Whole = (_, _) => throw new InvalidOperationException("down");
        await Serve(f, 1, 5);
        var open = await Check(check);
        Assert.Equal(HealthStatus.Degraded, open.Status);
        Assert.Contains("model 'ctr': circuit breaker Open", open.Description, StringComparison.Ordinal);

        f.Clock.Advance(TimeSpan.FromSeconds(5));
        f.Tower.Whole = null;
        await Serve(f, 10, 2); // the probe succeeds: closed
        Assert.Equal(HealthStatus.Healthy, (await Check(check)).Status);
    }

    [Fact]
    public async Task Degraded_while_the_fallback_share_over_the_window_passes_the_threshold()
    {
        using var f = new CacheFixture(m => m.Inference.CircuitBreaker = new CircuitBreakerOptions { Enabled = false });
        var check = new ERCacheHealthCheck(f.Cache, new ERCacheHealthCheckOptions { FallbackShareThreshold = 0.1, Window = TimeSpan.FromMinutes(1), MinimumResults = 50 });
        await Serve(f, 0, 100);
        var healthy = await Check(check);
        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.Equal(100L, healthy.Data["ctr.results"]);

        // 20 fallbacks among 120 results since the check began: 16.7 % > 10 %.
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("down");
        await Serve(f, 1000, 20);
        var degraded = await Check(check);
        Assert.Equal(HealthStatus.Degraded, degraded.Status);
        Assert.Contains("16.7", degraded.Description, StringComparison.Ordinal);
        Assert.Equal(20L, degraded.Data["ctr.fallbacks"]);

        // A window later, the model serves normally again: the old fallbacks fall out of the window.
        f.Tower.Whole = null;
        f.Clock.Advance(TimeSpan.FromSeconds(61));
        await Check(check);
        await Serve(f, 2000, 100);
        f.Clock.Advance(TimeSpan.FromSeconds(61));
        var recovered = await Check(check);
        Assert.Equal(HealthStatus.Healthy, recovered.Status);
        Assert.Equal(0L, recovered.Data["ctr.fallbacks"]);
    }

    [Fact]
    public async Task A_batch_counts_each_of_its_direct_hits_once_in_the_results_with_or_without_a_metrics_listener()
    {
        // A batch counts its hits in one add: the results total must still be one per user, and a listener still sees
        // each hit with its age.
        foreach (bool listening in new[] { false, true })
        {
            using var f = new CacheFixture();
            if (!listening)
            {
                f.Metrics.Dispose();
            }

            var check = new ERCacheHealthCheck(f.Cache, new ERCacheHealthCheckOptions { MinimumResults = 1 });
            var users = Enumerable.Range(0, 48).Select(u => (long)u).ToArray();
            var vectors = new float[64 * 4];
            var results = new EmbeddingResult[64];
            await f.Cache.GetManyAsync(Model, users, vectors.AsMemory(0, 48 * 4), results.AsMemory(0, 48)); // 48 fresh
            f.Clock.Advance(TimeSpan.FromSeconds(10));
            var mixed = Enumerable.Range(32, 64).Select(u => (long)u).ToArray(); // 16 hits, then 48 misses
            await f.Cache.GetManyAsync(Model, mixed, vectors, results);

            Assert.Equal(16, results.Count(r => r.Source == EmbeddingSource.Direct));
            Assert.Equal(48L + 64, (await Check(check)).Data["ctr.results"]);
            if (listening)
            {
                Assert.Equal(16, f.Metrics.Sum("ercache.requests", ("model", "ctr"), ("source", "direct")));
                Assert.Equal(16, f.Metrics.Count("ercache.vector.age", ("source", "direct")));
                Assert.Equal(160, f.Metrics.Sum("ercache.vector.age", ("source", "direct")), 6);
            }
        }
    }

    [Fact]
    public async Task Too_few_results_are_not_judged_and_a_disposed_cache_is_unhealthy()
    {
        var f = new CacheFixture(m => m.Inference.CircuitBreaker = new CircuitBreakerOptions { Enabled = false });
        var check = new ERCacheHealthCheck(f.Cache);
        f.Tower.Whole = (_, _) => throw new InvalidOperationException("down");
        await Serve(f, 0, 10); // all fallbacks, but 10 < 100 results
        Assert.Equal(HealthStatus.Healthy, (await Check(check)).Status);
        f.Dispose();
        Assert.Equal(HealthStatus.Unhealthy, (await Check(check)).Status);
    }

    [Fact]
    public void Bad_thresholds_are_refused_by_name()
    {
        using var f = new CacheFixture();
        var share = Assert.Throws<ArgumentOutOfRangeException>(() => new ERCacheHealthCheck(f.Cache, new ERCacheHealthCheckOptions { FallbackShareThreshold = 1.5 }));
        Assert.Contains("FallbackShareThreshold", share.Message, StringComparison.Ordinal);
        var window = Assert.Throws<ArgumentOutOfRangeException>(() => new ServiceCollection().AddHealthChecks().AddERCache(configure: o => o.Window = TimeSpan.Zero));
        Assert.Contains("Window must be positive", window.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_check_registers_with_AddHealthChecks_and_reports_through_the_health_check_service()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ERCache:Models:ctr:Dimensions"] = "4",
            ["ERCache:Models:ctr:Direct:Ttl"] = "00:01:00",
            ["ERCache:Models:ctr:Failover:Ttl"] = "01:00:00",
        }).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration).AddLogging();
        services.AddSingleton<TimeProvider>(new FakeTimeProvider());
        services.AddERCache().AddModel("ctr", new TestTower());
        services.AddHealthChecks().AddERCache(tags: ["ready"]);
        await using var provider = services.BuildServiceProvider();

        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        var entry = Assert.Single(report.Entries);
        Assert.Equal("ercache", entry.Key);
        Assert.Equal(HealthStatus.Healthy, entry.Value.Status);
        Assert.Contains("ready", entry.Value.Tags);
    }


    [Fact]
    public async Task Degraded_while_the_last_reload_was_rejected_and_healthy_once_one_is_applied()
    {
        using var host = new ReloadableCache(new ERCacheOptions { Models = { [Model] = CacheFixture.DefaultModel(4) } });
        var check = new ERCacheHealthCheck(host.Cache);
        var invalid = CacheFixture.DefaultModel(4);
        invalid.Direct.Ttl = TimeSpan.Zero;

        host.Reload(new ERCacheOptions { Models = { [Model] = invalid } });

        var rejected = await Check(check);
        Assert.Equal(HealthStatus.Degraded, rejected.Status);
        Assert.Contains("configuration: the last configuration reload was rejected (", rejected.Description, StringComparison.Ordinal);
        Assert.Contains($"ERCache:Models:{Model}:Direct:Ttl must be positive", rejected.Description, StringComparison.Ordinal);

        host.Reload(new ERCacheOptions { Models = { [Model] = CacheFixture.DefaultModel(4) } });
        Assert.Equal(HealthStatus.Healthy, (await Check(check)).Status);
    }

    [Fact]
    public async Task Degraded_while_the_last_reloaded_section_holds_a_value_that_does_not_bind()
    {
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model(Model)));
        var check = new ERCacheHealthCheck(host.Cache);

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model(Model, directTtl: "not a time")));

        var unbound = await Check(check);
        Assert.Equal(HealthStatus.Degraded, unbound.Status);
        Assert.Contains(
            $"configuration: the last configuration reload was rejected (ERCache:Models:{Model}:Direct:Ttl 'not a time' is not a duration",
            unbound.Description, StringComparison.Ordinal);

        host.Reload(ConfiguredHost.Json(ConfiguredHost.Model(Model, directTtl: "00:02:00")));
        Assert.Equal(HealthStatus.Healthy, (await Check(check)).Status);
        Assert.Equal(TimeSpan.FromMinutes(2), host.Cache.GetPolicy(Model).Direct.Ttl);
    }

    [Fact]
    public async Task Degraded_while_the_last_reload_failed_unexpectedly_and_healthy_once_one_is_applied()
    {
        // The application's inference lookup throws for the reload's new model: neither a bad setting nor a binding error.
        using var host = new ReloadableCache(
            new ERCacheOptions { Models = { [Model] = CacheFixture.DefaultModel(4) } },
            name => name == "broken" ? throw new FormatException("the model store returned garbage") : new TestTower());
        var check = new ERCacheHealthCheck(host.Cache);

        host.Reload(new ERCacheOptions { Models = { [Model] = CacheFixture.DefaultModel(4), ["broken"] = CacheFixture.DefaultModel(4) } });

        var failed = await Check(check);
        Assert.Equal(HealthStatus.Degraded, failed.Status);
        Assert.Contains(
            "configuration: the last configuration reload failed (FormatException: the model store returned garbage); the previous settings stay in force",
            failed.Description, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => host.Cache.GetPolicy("broken")); // nothing of it was applied

        host.Reload(new ERCacheOptions { Models = { [Model] = CacheFixture.DefaultModel(4) } });
        Assert.Equal(HealthStatus.Healthy, (await Check(check)).Status);
    }

    [Fact]
    public async Task Degraded_while_the_last_reloaded_section_could_not_be_read_at_all()
    {
        var broken = new BreakableSource();
        using var host = new ConfiguredHost(ConfiguredHost.Json(ConfiguredHost.Model(Model)), source: broken);
        var check = new ERCacheHealthCheck(host.Cache);

        broken.Provider.Broken = true;
        host.Configuration.Reload();

        var unread = await Check(check);
        Assert.Equal(HealthStatus.Degraded, unread.Status);
        Assert.Contains(
            "configuration: the last configuration reload could not be bound (the configuration store is unreachable); the previous settings stay in force",
            unread.Description, StringComparison.Ordinal);
        Assert.Contains(host.Logs.GetSnapshot(), r => r.Level == LogLevel.Error && r.Exception?.Message == "the configuration store is unreachable");

        broken.Provider.Broken = false;
        host.Configuration.Reload();
        Assert.Equal(HealthStatus.Healthy, (await Check(check)).Status);
    }

    /// <summary>A configuration source whose reads throw while <see cref="BreakableProvider.Broken"/> (a provider whose
    /// backing store went away), and which holds nothing otherwise.</summary>
    private sealed class BreakableSource : IConfigurationSource
    {
        public BreakableProvider Provider { get; } = new();

        public IConfigurationProvider Build(IConfigurationBuilder builder) => Provider;
    }

    private sealed class BreakableProvider : ConfigurationProvider
    {
        public bool Broken { get; set; }

        public override IEnumerable<string> GetChildKeys(IEnumerable<string> earlierKeys, string? parentPath) =>
            Broken ? throw new InvalidOperationException("the configuration store is unreachable") : base.GetChildKeys(earlierKeys, parentPath);
    }
}
