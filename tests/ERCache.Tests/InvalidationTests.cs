using ERCache.Diagnostics;
using ERCache.Health;
using ERCache.Inference;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>DESIGN §2 rule 11 across hosts: a removal, push or clear on one host reaches every other host's local tiers
/// through the store's invalidation channel (here the in-memory store's, which delivers before publishing returns), and
/// a host that lost its subscription does not trust local vectors written before the loss.</summary>
public sealed class InvalidationTests
{
    private const string Model = "ctr";

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_removal_on_one_host_leaves_no_host_serving_the_user_from_any_tier(bool everyModel)
    {
        await using var region = await Region.StartAsync(hosts: 3);
        foreach (var host in region.Hosts)
        {
            Assert.True((await host.GetAsync(7)).Result.HasVector); // host 0 infers, the others copy it from the store
        }

        Assert.Equal(EmbeddingSource.Direct, (await region.Hosts[2].GetAsync(7)).Result.Source);
        foreach (var host in region.Hosts)
        {
            host.Tower.PerUser = (_, batch, i, _) => { batch.Fail(i); return ValueTask.CompletedTask; }; // any vector served now is an old one
        }

        _ = everyModel ? await region.Hosts[0].Cache.RemoveAsync(7) : await region.Hosts[0].Cache.RemoveAsync(Model, 7);

        foreach (var host in region.Hosts)
        {
            var (result, _) = await host.GetAsync(7);
            Assert.Equal((EmbeddingSource.Fallback, false), (result.Source, result.HasVector)); // neither direct nor failover
            Assert.Equal(0, host.Cache.GetEntryCount(Model, TierKind.Direct) + host.Cache.GetEntryCount(Model, TierKind.Failover));
        }

        Assert.Equal(0, region.Hosts[0].Metrics.Sum(ERCacheDiagnostics.InvalidationMessages, ("direction", "received"))); // never its own
        Assert.Equal(1, region.Hosts[0].Metrics.Sum(ERCacheDiagnostics.InvalidationMessages, ("direction", "sent")));
        Assert.Equal(1, region.Hosts[1].Metrics.Sum(ERCacheDiagnostics.InvalidationMessages, ("direction", "applied")));
        Assert.Equal(1, region.Hosts[2].Metrics.Sum(ERCacheDiagnostics.InvalidationMessages, ("direction", "applied")));
    }

    [Fact]
    public async Task A_push_is_announced_once_it_is_in_the_store_and_the_other_hosts_then_serve_it()
    {
        await using var region = await Region.StartAsync(hosts: 2);
        await region.Hosts[0].GetAsync(3);
        await region.Hosts[1].GetAsync(3); // a local copy of generation 1 on host 1
        region.Clock.Advance(TimeSpan.FromSeconds(1)); // the push is newer than the inference (newer wins in the store)
        float[] pushed = [3, 99, 5, 6];
        region.Hosts[0].Cache.SetVector(Model, 3, pushed);
        Assert.Equal(EmbeddingSource.Direct, (await region.Hosts[1].GetAsync(3)).Result.Source); // not yet in the store: not announced

        await region.Hosts[0].Cache.FlushRegionalWritesAsync();
        var (result, vector) = await region.Hosts[1].GetAsync(3);
        Assert.Equal((EmbeddingSource.Regional, 99), (result.Source, TestTower.GenerationOf(vector)));
    }

    [Fact]
    public async Task A_push_written_by_the_last_flush_at_disposal_is_announced_too()
    {
        await using var region = await Region.StartAsync(hosts: 2);
        await region.Hosts[0].GetAsync(3);
        await region.Hosts[1].GetAsync(3); // a local copy of generation 1 on host 1
        region.Clock.Advance(TimeSpan.FromSeconds(1));
        region.Hosts[0].Cache.SetVector(Model, 3, [3, 99, 5, 6]);
        long published = region.Store.Published;

        await region.Hosts[0].Cache.DisposeAsync(); // a graceful stop: the push is flushed, then announced

        Assert.Equal(published + 1, region.Store.Published);
        var (result, vector) = await region.Hosts[1].GetAsync(3);
        Assert.Equal((EmbeddingSource.Regional, 99), (result.Source, TestTower.GenerationOf(vector)));
        Assert.Equal(1, region.Hosts[1].Metrics.Sum(ERCacheDiagnostics.InvalidationMessages, ("direction", "applied")));
    }

    [Fact]
    public async Task A_clear_on_one_host_empties_the_model_on_the_others_and_they_ignore_older_regional_values()
    {
        await using var region = await Region.StartAsync(hosts: 2);
        await region.Hosts[0].GetAsync(4);
        await region.Hosts[1].GetAsync(4);
        region.Clock.Advance(TimeSpan.FromSeconds(1));
        region.Hosts[0].Cache.Clear(Model);

        Assert.Equal(0, region.Hosts[1].Cache.GetEntryCount(Model, TierKind.Direct));
        var (result, _) = await region.Hosts[1].GetAsync(4);
        Assert.Equal(EmbeddingSource.Fresh, result.Source); // the store's value predates the clear
    }

    [Fact]
    public async Task While_the_subscription_is_lost_older_local_vectors_are_checked_regionally_and_dropped_when_it_is_back()
    {
        await using var region = await Region.StartAsync(hosts: 2);
        var host = region.Hosts[1];
        var check = new ERCacheHealthCheck(host.Cache, new ERCacheHealthCheckOptions { FallbackShareThreshold = 1 });
        await region.Hosts[0].GetAsync(5);
        await host.GetAsync(5);
        await host.GetAsync(6); // host 1 infers user 6 itself; host 0 never sees it
        Assert.Equal(EmbeddingSource.Direct, (await host.GetAsync(5)).Result.Source);
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(new HealthCheckContext())).Status);

        region.Store.SetChannelDown(true);
        region.Clock.Advance(TimeSpan.FromSeconds(1));
        await region.Hosts[0].Cache.RemoveAsync(6); // the message is lost
        Assert.Equal(HealthStatus.Degraded, (await check.CheckHealthAsync(new HealthCheckContext())).Status);
        Assert.Equal(EmbeddingSource.Regional, (await host.GetAsync(5)).Result.Source); // checked against the store, which has it
        Assert.Equal(EmbeddingSource.Fresh, (await host.GetAsync(6)).Result.Source); // removed there: not served from the old copy
        await host.GetAsync(8);
        Assert.Equal(EmbeddingSource.Direct, (await host.GetAsync(8)).Result.Source); // written after the loss: trusted

        region.Store.SetChannelDown(false);
        Assert.Equal(0, host.Cache.GetEntryCount(Model, TierKind.Direct)); // what was written before cannot be vouched for
        Assert.Equal(EmbeddingSource.Regional, (await host.GetAsync(5)).Result.Source);
        Assert.Equal(EmbeddingSource.Direct, (await host.GetAsync(5)).Result.Source);
        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(new HealthCheckContext())).Status);
    }

    [Fact]
    public async Task While_the_subscription_is_lost_a_failover_vector_written_before_the_loss_is_not_served_for_a_user_removed_meanwhile()
    {
        // Rule 11 for the failover tier too: a removal made elsewhere during the loss never reached host 1, so when its
        // inference fails it must not fall back on its own old copy; the store, which remembers the removal, decides.
        await using var region = await Region.StartAsync(hosts: 2);
        var host = region.Hosts[1];
        await host.GetAsync(6); // host 1 infers user 6: in its direct and failover tiers, and in the store
        await host.GetAsync(7);
        Assert.Equal(2, host.Cache.GetEntryCount(Model, TierKind.Failover));

        region.Store.SetChannelDown(true);
        region.Clock.Advance(TimeSpan.FromSeconds(1));
        await region.Hosts[0].Cache.RemoveAsync(6); // the message is lost
        host.Tower.PerUser = (_, batch, i, _) => { batch.Fail(i); return ValueTask.CompletedTask; };

        var (removed, vector) = await host.GetAsync(6);
        Assert.Equal(EmbeddingSource.Fallback, removed.Source); // not its failover copy of a removed user
        Assert.All(vector, v => Assert.Equal(0, v));
        Assert.Equal(EmbeddingSource.Regional, (await host.GetAsync(7)).Result.Source); // a user not removed: the store's copy
    }

    /// <summary>One host with the default model, an inline dispatcher and <paramref name="store"/>.</summary>
    private static EmbeddingCache InlineHost(TimeProvider clock, IRegionalStore store)
    {
        TestThread.LeaveSynchronizationContext();
        return EmbeddingCache.Create(
            new ERCacheOptions { Models = { [Model] = CacheFixture.DefaultModel(4) } },
            new Dictionary<string, IEmbeddingInference> { [Model] = new TestTower { Generation = 1 } },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, RegionalStore = store });
    }

    [Fact]
    public async Task A_restored_event_handled_before_its_failed_event_does_not_leave_the_host_lost()
    {
        // The client's events come on other threads: "restored" may be handled before the "failed" it follows, and no
        // further event comes. The host probes while it believes the channel lost and trusts it once it hears itself.
        var clock = new FakeTimeProvider();
        var store = new InMemoryRegionalStore(clock);
        var channel = new DeafChannel(store);
        await using var host = InlineHost(clock, channel);
        await host.WhenReadyAsync();
        var check = new ERCacheHealthCheck(host, new ERCacheHealthCheckOptions { FallbackShareThreshold = 1 });
        await host.GetAsync(Model, 5, new float[4]);

        channel.Report(subscribed: true);  // the reconnect, handled first
        channel.Report(subscribed: false); // then the loss it followed: the last word, and the channel works
        Assert.Equal(HealthStatus.Degraded, (await check.CheckHealthAsync(new HealthCheckContext())).Status);

        clock.Advance(RegionalInvalidator.RetryInterval); // the host's probe is heard
        await host.WhenReadyAsync();

        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(new HealthCheckContext())).Status);
        Assert.Equal(0, host.GetTierStatistics(Model, TierKind.Direct)!.Value.Count); // what it held before is dropped
    }

    [Fact]
    public async Task A_subscription_reported_back_is_trusted_only_once_the_host_hears_its_own_probe()
    {
        // The client says the connection is back before its subscription is: a removal published in between is not
        // heard. Host 1 must not keep a copy made in that gap once it trusts the channel again.
        var clock = new FakeTimeProvider();
        var store = new InMemoryRegionalStore(clock);
        var gap = new DeafChannel(store);
        await using var remover = InlineHost(clock, store);
        await using var host = InlineHost(clock, gap);
        await remover.WhenReadyAsync();
        await host.WhenReadyAsync();
        var check = new ERCacheHealthCheck(host, new ERCacheHealthCheckOptions { FallbackShareThreshold = 1 });
        await remover.GetAsync(Model, 5, new float[4]);
        await remover.FlushRegionalWritesAsync();

        gap.Report(subscribed: false);
        gap.Deaf = true;
        gap.Report(subscribed: true); // reconnected, not yet subscribed: the probe goes unheard
        Assert.Equal(EmbeddingSource.Regional, (await host.GetAsync(Model, 5, new float[4])).Source); // a copy made in the gap
        await remover.RemoveAsync(5); // not heard by host 1
        Assert.Equal(HealthStatus.Degraded, (await check.CheckHealthAsync(new HealthCheckContext())).Status);

        gap.Deaf = false;
        clock.Advance(RegionalInvalidator.RetryInterval); // the next probe is heard: the channel is trusted again
        await host.WhenReadyAsync();

        Assert.Equal(HealthStatus.Healthy, (await check.CheckHealthAsync(new HealthCheckContext())).Status);
        var vector = new float[4];
        var result = await host.GetAsync(Model, 5, vector);
        Assert.NotEqual(EmbeddingSource.Direct, result.Source); // the gap's copy was dropped when the probe was heard
        Assert.Equal(EmbeddingSource.Fresh, result.Source);
    }

    [Fact]
    public async Task Without_a_channel_or_with_Invalidation_off_nothing_is_announced()
    {
        await using var region = await Region.StartAsync(hosts: 2, invalidation: false);
        await region.Hosts[0].GetAsync(9);
        await region.Hosts[1].GetAsync(9);
        await region.Hosts[0].Cache.RemoveAsync(9);
        Assert.Equal(0, region.Store.Published);
        Assert.Equal(EmbeddingSource.Direct, (await region.Hosts[1].GetAsync(9)).Result.Source); // its copy until its TTL
    }

    [Fact]
    public async Task A_subscription_that_fails_at_start_up_is_retried_until_the_channel_answers()
    {
        var clock = new FakeTimeProvider();
        var inner = new InMemoryRegionalStore(clock);
        var flaky = new FailingSubscriptions(inner, failures: 2);
        var options = new ERCacheOptions { Models = { [Model] = CacheFixture.DefaultModel(4) } };
        TestThread.LeaveSynchronizationContext();
        await using var host = EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { [Model] = new TestTower { Generation = 1 } },
            new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, RegionalStore = flaky });
        await host.WhenReadyAsync(); // the first attempt ended (it failed): start-up is not held
        Assert.Equal((1, false), (flaky.Attempts, host.IsInvalidationSubscribed));

        clock.Advance(RegionalInvalidator.RetryInterval);
        await Poll.Until(() => flaky.Attempts == 2, "no second attempt after the retry interval");
        await Poll.Until(
            () =>
            {
                clock.Advance(RegionalInvalidator.RetryInterval); // each retry waits its interval on the cache's clock
                return host.IsInvalidationSubscribed == true;
            },
            "a later attempt did not subscribe");
        Assert.Equal(3, flaky.Attempts); // and none after it succeeded

        await host.GetAsync(Model, 2, new float[4]);
        await inner.PublishAsync(new InvalidationMessage(InvalidationKind.RemoveUser, Guid.NewGuid(), 2, 0, null).Encode(), default);
        Assert.Equal(0, host.GetEntryCount(Model, TierKind.Direct)); // another host's removal is heard now
    }

    [Fact]
    public void Messages_round_trip_and_anything_else_is_refused()
    {
        var host = Guid.NewGuid();
        foreach (var message in new[]
                 {
                     new InvalidationMessage(InvalidationKind.RemoveUser, host, 42, 1_733_000_000_000, null),
                     new InvalidationMessage(InvalidationKind.Push, host, -1, 5, "ctr:v1"),
                     new InvalidationMessage(InvalidationKind.Clear, host, 0, 7, "modèle:2026-12"),
                 })
        {
            Assert.True(InvalidationMessage.TryDecode(message.Encode(), out var decoded));
            Assert.Equal(message, decoded);
        }

        var valid = new InvalidationMessage(InvalidationKind.RemoveField, host, 1, 2, "ctr:v1").Encode();
        Assert.False(InvalidationMessage.TryDecode(valid.AsSpan(0, 20), out _)); // truncated
        Assert.False(InvalidationMessage.TryDecode([9, .. valid[1..]], out _)); // another layout
        Assert.False(InvalidationMessage.TryDecode([valid[0], 77, .. valid[2..]], out _)); // unknown kind
        Assert.False(InvalidationMessage.TryDecode(valid.AsSpan(0, 34), out _)); // a field removal without its field
    }

    /// <summary>Hosts sharing one in-memory store and its channel, each with its own tower (generation 1) and the inline
    /// dispatcher, on one fake clock.</summary>
    private sealed class Region : IAsyncDisposable
    {
        private Region(int hosts, bool invalidation)
        {
            Store = new InMemoryRegionalStore(Clock);
            Hosts = [.. Enumerable.Range(0, hosts).Select(_ => new Host(Clock, Store, invalidation))];
        }

        public FakeTimeProvider Clock { get; } = new();

        public InMemoryRegionalStore Store { get; }

        public Host[] Hosts { get; }

        /// <summary>Not an async method: it leaves xUnit's context for the calling test, which an async method cannot do
        /// (its builder restores the caller's context when it returns, and the test would go on under xUnit's, where
        /// the hosts' reactions to a step run later on pool threads: a host's loss-watch probe could then prove the
        /// channel on another thread while the test reads the tiers).</summary>
        public static Task<Region> StartAsync(int hosts, bool invalidation = true)
        {
            TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step (see TestThread)
            var region = new Region(hosts, invalidation);
            return region.WhenReadyAsync();
        }

        private async Task<Region> WhenReadyAsync()
        {
            foreach (var host in Hosts)
            {
                await host.Cache.WhenReadyAsync(); // subscribed
            }

            return this;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var host in Hosts)
            {
                host.Metrics.Dispose();
                await host.Cache.DisposeAsync();
            }
        }
    }

    private sealed class Host
    {
        public Host(FakeTimeProvider clock, InMemoryRegionalStore store, bool invalidation)
        {
            var model = CacheFixture.DefaultModel(4);
            var options = new ERCacheOptions { Models = { [Model] = model }, Regional = new RegionalOptions { Invalidation = invalidation } };
            Cache = EmbeddingCache.Create(
                options, new Dictionary<string, IEmbeddingInference> { [Model] = Tower },
                new EmbeddingCacheServices { TimeProvider = clock, Dispatcher = InferenceDispatcher.Inline, RegionalStore = store });
            Metrics = new CacheMetrics(Cache.Meter);
        }

        public TestTower Tower { get; } = new() { Generation = 1 };

        public EmbeddingCache Cache { get; }

        public CacheMetrics Metrics { get; }

        public async Task<(EmbeddingResult Result, float[] Vector)> GetAsync(long user)
        {
            TestThread.AssertLeft();
            var vector = new float[4];
            var result = await Cache.GetAsync(Model, user, vector);
            await Cache.FlushRegionalWritesAsync(); // what it inferred is in the store for the others
            return (result, vector);
        }
    }

    /// <summary>The in-memory store's data and channel, with a subscription whose state the test reports and which
    /// drops messages while <see cref="Deaf"/> (a client reconnected but not yet subscribed again).</summary>
    private sealed class DeafChannel(InMemoryRegionalStore inner) : WrappedRegionalStore(inner)
    {
        private Action<bool>? _report;

        public bool Deaf { get; set; }

        public void Report(bool subscribed) => _report!(subscribed);

        public override Task<IAsyncDisposable> SubscribeAsync(Action<byte[]> onMessage, Action<bool> onSubscribed, CancellationToken cancellationToken)
        {
            _report = onSubscribed;
            return Inner.SubscribeAsync(m => { if (!Deaf) { onMessage(m); } }, onSubscribed, cancellationToken);
        }
    }
}
