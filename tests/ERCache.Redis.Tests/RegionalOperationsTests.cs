using ERCache.Redis.Tests.Infrastructure;
using StackExchange.Redis;

namespace ERCache.Redis.Tests;

/// <summary>The operations API against real Redis and Garnet: removals reach the store, pushed vectors travel to other
/// hosts, and a clear hides older regional values on the host that cleared.</summary>
public sealed class RegionalOperationsTests(SharedServers servers) : IClassFixture<SharedServers>
{
    private static string Field(string model = "ctr") => $"{model}:v1"; // the model and version, as the cache names its fields

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task Removing_a_user_deletes_the_models_regional_value_including_one_still_queued(ServerKind kind)
    {
        long user = servers.Users(2);
        await using var a = new RegionalHost(servers[kind].ConnectionString, models: ["ctr", "cvr"]);
        await a.GetAsync(user);
        await a.GetAsync(user, "cvr");
        await a.Cache.FlushRegionalWritesAsync();
        await a.GetAsync(user + 1); // queued, not flushed yet

        Assert.Equal(2, await a.Cache.RemoveAsync("ctr", user));
        Assert.Equal(2, await a.Cache.RemoveAsync("ctr", user + 1));

        using var redis = await ConnectionMultiplexer.ConnectAsync(servers[kind].ConnectionString);
        var db = redis.GetDatabase();
        Assert.False(await db.KeyExistsAsync(RedisRegionalStore.ValueKeyOf(user, Field())));
        Assert.True(await db.KeyExistsAsync(RedisRegionalStore.ValueKeyOf(user, Field("cvr")))); // the other model's value stays
        await a.Cache.FlushRegionalWritesAsync();
        Assert.False(await db.KeyExistsAsync(RedisRegionalStore.ValueKeyOf(user + 1, Field()))); // queued before the removal: refused

        await using var b = new RegionalHost(servers[kind].ConnectionString, models: ["ctr", "cvr"]);
        b.Towers["ctr"].Failing = true;
        Assert.Equal(EmbeddingSource.Fallback, (await b.GetAsync(user)).Result.Source);
        Assert.Equal(EmbeddingSource.Regional, (await b.GetAsync(user, "cvr")).Result.Source);
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task Removing_a_user_of_every_model_deletes_every_value_of_the_user(ServerKind kind)
    {
        long user = servers.Users(1);
        await using var a = new RegionalHost(servers[kind].ConnectionString, models: ["ctr", "cvr"]);
        await a.GetAsync(user);
        await a.GetAsync(user, "cvr");
        await a.Cache.FlushRegionalWritesAsync();

        Assert.Equal(4, await a.Cache.RemoveAsync(user));

        using var redis = await ConnectionMultiplexer.ConnectAsync(servers[kind].ConnectionString);
        Assert.False(await redis.GetDatabase().KeyExistsAsync(RedisRegionalStore.ValueKeyOf(user, Field())));
        Assert.False(await redis.GetDatabase().KeyExistsAsync(RedisRegionalStore.ValueKeyOf(user, Field("cvr"))));
        a.Towers["ctr"].Failing = true;
        Assert.Equal(EmbeddingSource.Fallback, (await a.GetAsync(user)).Result.Source);
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_pushed_vector_reaches_other_hosts_through_the_store(ServerKind kind)
    {
        long user = servers.Users(1);
        await using var a = new RegionalHost(servers[kind].ConnectionString);
        await using var b = new RegionalHost(servers[kind].ConnectionString);
        var pushed = Enumerable.Range(0, RegionalHost.Dimensions).Select(j => 0.5f * j).ToArray();
        a.Cache.SetVector("ctr", user, pushed);
        await a.Cache.FlushRegionalWritesAsync();

        b.FakeClock.Advance(TimeSpan.FromSeconds(5));
        var (result, vector) = await b.GetAsync(user);
        Assert.Equal(EmbeddingSource.Regional, result.Source);
        Assert.Equal(TimeSpan.FromSeconds(5), result.Age);
        Assert.Equal(pushed, vector);
        Assert.Equal(0, b.Towers["ctr"].Users);
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_cleared_host_ignores_regional_values_written_before_its_clear(ServerKind kind)
    {
        long user = servers.Users(2);
        await using var a = new RegionalHost(servers[kind].ConnectionString);
        await using var b = new RegionalHost(servers[kind].ConnectionString);
        await a.Cache.WhenReadyAsync(); // subscribed: a hears b's clear
        await a.GetAsync(user);
        await b.GetAsync(user); // b has it too, read from the store
        await a.Cache.FlushRegionalWritesAsync();

        Assert.Equal(2, b.Cache.Clear("ctr"));
        b.Towers["ctr"].Failing = true;
        Assert.Equal(EmbeddingSource.Fallback, (await b.GetAsync(user)).Result.Source); // neither local nor regional failover

        // a applies b's clear too, whenever the channel delivers it, and drops whatever inference is pending then: wait
        // for it, so that it cannot land during the inference below.
        await a.WhenAppliedAsync(1);
        a.FakeClock.Advance(TimeSpan.FromSeconds(1)); // a value computed after the clear is served again
        await a.GetAsync(user + 1);
        await a.Cache.FlushRegionalWritesAsync();
        b.FakeClock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(EmbeddingSource.Regional, (await b.GetAsync(user + 1)).Result.Source);
    }

    [Fact]
    public async Task A_removal_the_store_cannot_confirm_throws_after_clearing_the_local_tiers()
    {
        long user = servers.Users(1);
        await using var host = new RegionalHost($"127.0.0.1:{StoreServer.FreePort()},connectTimeout=200");
        await host.GetAsync(user); // served by inference; the store is unreachable
        Assert.Equal(1, host.Cache.GetTierStatistics("ctr", TierKind.Direct)!.Value.Count);

        await Assert.ThrowsAnyAsync<Exception>(() => host.Cache.RemoveAsync("ctr", user));
        Assert.Equal(0, host.Cache.GetTierStatistics("ctr", TierKind.Direct)!.Value.Count);
        Assert.Equal(0, host.Cache.GetTierStatistics("ctr", TierKind.Failover)!.Value.Count);
    }
}
