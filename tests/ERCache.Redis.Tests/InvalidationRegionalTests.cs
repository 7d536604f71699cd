using ERCache.Redis.Tests.Infrastructure;
using ERCache.Health;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace ERCache.Redis.Tests;

/// <summary>DESIGN §2 rule 11 across hosts, against real Redis and Garnet: three hosts (three caches, each with its own
/// connection) share a store; a removal on one reaches the others' local tiers over the store's pub/sub channel, and a
/// host whose subscription was cut does not serve vectors written before the cut as direct hits.</summary>
public sealed class InvalidationRegionalTests(SharedServers servers) : IClassFixture<SharedServers>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30); // a bound for a hang, never an expectation

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_removal_on_one_host_leaves_no_host_serving_the_user_once_applied(ServerKind kind)
    {
        long user = servers.Users(1);
        await using var a = new RegionalHost(servers[kind].ConnectionString);
        await using var b = new RegionalHost(servers[kind].ConnectionString);
        await using var c = new RegionalHost(servers[kind].ConnectionString);
        RegionalHost[] hosts = [a, b, c];
        foreach (var host in hosts)
        {
            await host.Cache.WhenReadyAsync(); // subscribed
            await host.GetAsync(user);
            await host.Cache.FlushRegionalWritesAsync();
            Assert.Equal(EmbeddingSource.Direct, (await host.GetAsync(user)).Result.Source);
            host.Towers["ctr"].Failing = true; // any vector served from now on is one written before the removal
        }

        await a.Cache.RemoveAsync(user);
        foreach (var other in new[] { b, c })
        {
            await other.WhenAppliedAsync(1);
            Assert.Equal(1, RegionalHost.Sum(other.Invalidations, "direction", "applied"));
        }

        foreach (var host in hosts)
        {
            var (result, _) = await host.GetAsync(user);
            Assert.Equal((EmbeddingSource.Fallback, false), (result.Source, result.HasVector));
        }

        Assert.Equal(0, RegionalHost.Sum(a.Invalidations, "direction", "received")); // never its own message
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_host_whose_subscription_is_killed_drops_what_it_cannot_vouch_for_and_hears_removals_again(ServerKind kind)
    {
        var server = servers[kind];
        long user = servers.Users(2);
        await using var a = new RegionalHost(server.ConnectionString);
        await using var b = new RegionalHost(server.ConnectionString);
        await a.Cache.WhenReadyAsync();
        await b.Cache.WhenReadyAsync();
        await b.GetAsync(user);
        await b.GetAsync(user + 1);
        await b.Cache.FlushRegionalWritesAsync();
        Assert.True(await Subscribed(b));

        // Cut every pub/sub connection. The client reconnects within a moment (too fast to observe the gap from here; the
        // unit tests cover serving during it), and what b held from before the cut is dropped: it may have missed messages.
        await using var admin = await ConnectionMultiplexer.ConnectAsync($"{server.ConnectionString},allowAdmin=true");
        await admin.GetServer(admin.GetEndPoints()[0]).ExecuteAsync("CLIENT", "KILL", "TYPE", "pubsub");
        // b trusts the channel once it hears its own probe; one sent before the client has subscribed again is lost, and
        // the next goes a second later on b's clock, which the test moves.
        await Until(
            async () => b.Cache.GetTierStatistics("ctr", TierKind.Direct)!.Value.Count == 0 && await Subscribed(b),
            "b did not drop its pre-cut vectors and subscribe again",
            between: () => b.FakeClock.Advance(TimeSpan.FromSeconds(1)));
        Assert.Equal(EmbeddingSource.Regional, (await b.GetAsync(user)).Result.Source); // from the store, which still has it

        // Subscribed again: a removal on a reaches b, once b holds the user again. Seen once on Garnet under a full
        // run: the lookup after the copy above was Regional again, as if b had dropped its tiers once more (a reconnect
        // reported after the probe was heard would do that, not proven); so this waits until a lookup is Direct.
        await Until(async () => (await b.GetAsync(user)).Result.Source == EmbeddingSource.Direct, "b does not hold the user locally");
        b.Towers["ctr"].Failing = true;
        long before = RegionalHost.Sum(b.Invalidations, "direction", "applied");
        await a.Cache.RemoveAsync(user);
        await b.WhenAppliedAsync((int)before + 1);
        var (removed, _) = await b.GetAsync(user);
        Assert.Equal((EmbeddingSource.Fallback, false), (removed.Source, removed.HasVector));
    }

    /// <summary>The subscription's state as the health check reports it.</summary>
    private static async Task<bool> Subscribed(RegionalHost host) =>
        (await new ERCacheHealthCheck(host.Cache).CheckHealthAsync(new HealthCheckContext())).Data["invalidation_subscribed"] is true;

    /// <summary>Waits for a state the store's client reaches on its own thread (a reconnect), bounded by
    /// <see cref="Patience"/>.</summary>
    private static async Task Until(Func<Task<bool>> condition, string because, Action? between = null)
    {
        using var timeout = new CancellationTokenSource(Patience);
        for (int attempt = 1; !await condition(); attempt++)
        {
            Assert.False(timeout.IsCancellationRequested, because);
            await Task.Delay(20, CancellationToken.None);
            if (attempt % 10 == 0)
            {
                between?.Invoke(); // every 200 ms of real time
            }
        }
    }
}
