using ERCache.Redis.Tests.Infrastructure;
using ERCache.Regional;
using StackExchange.Redis;

namespace ERCache.Redis.Tests;

/// <summary>DESIGN §2 rule 11 in the store, against real Redis, Garnet and a Redis Cluster: a regional write replaces a
/// value only when its stamp is newer, and a removal is remembered, so a write delayed by a slow flush or a reconnect
/// neither replaces a newer value nor brings a removed user back.</summary>
public sealed class NewerWinsTests(SharedServers servers) : IClassFixture<SharedServers>
{
    private static readonly TimeSpan Ttl = TimeSpan.FromMinutes(10);

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_late_write_never_replaces_a_newer_value_or_undoes_a_removal(ServerKind kind)
    {
        long user = servers.Users(1);
        await using var store = RedisRegionalStore.Connect(servers[kind].ConnectionString);
        await AssertNewerWinsAsync(store, user);
    }

    [Fact]
    public async Task A_late_write_never_replaces_a_newer_value_on_a_cluster_either()
    {
        using var cluster = new RedisCluster();
        await using var store = RedisRegionalStore.Connect(cluster.ConnectionString);
        foreach (long user in new long[] { 1, 2, 3, 4, 5, 6 }) // spread over the nodes
        {
            await AssertNewerWinsAsync(store, user);
        }
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task Hosts_whose_writes_land_out_of_order_leave_the_newer_vector_for_everyone(ServerKind kind)
    {
        long user = servers.Users(1);
        await using var older = new RegionalHost(servers[kind].ConnectionString);
        await using var newer = new RegionalHost(servers[kind].ConnectionString);
        newer.FakeClock.Advance(TimeSpan.FromSeconds(30)); // its inference is 30 s younger
        await older.GetAsync(user);
        await newer.GetAsync(user);

        await newer.Cache.FlushRegionalWritesAsync(); // the newer write lands first, the older one after it (a slow flush)
        await older.Cache.FlushRegionalWritesAsync();

        Assert.Equal(1, RegionalHost.Sum(older.Dropped, "reason", "late"));
        Assert.Equal(0, RegionalHost.Sum(newer.Dropped));
        await using var reader = new RegionalHost(servers[kind].ConnectionString);
        reader.FakeClock.Advance(TimeSpan.FromSeconds(40));
        var (result, vector) = await reader.GetAsync(user);
        Assert.Equal((EmbeddingSource.Regional, TimeSpan.FromSeconds(10)), (result.Source, result.Age)); // the newer one's age (the older's: 40 s)
        Assert.True(UserTower.BelongsTo(vector, user));
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task Writes_racing_removals_from_other_connections_never_bring_back_what_was_written_before(ServerKind kind)
    {
        // Three connections (three hosts): two write a user's values stamped before its removal, one removes it, all at
        // once. Whatever order the server runs them in, nothing stamped before the removal may be left; a write stamped
        // after it (from the third connection, after the removal returned) is kept.
        const int users = 300;
        long first = servers.Users(users);

        // The test is about order, not latency: 900 script calls at once on a server that may have just started (its
        // first EVAL compiles the script) and a machine running the other test assemblies can outlast the client's
        // default timeout (seen once on a fresh machine, Garnet), so these connections wait longer.
        var options = ConfigurationOptions.Parse(servers[kind].ConnectionString);
        options.AsyncTimeout = 20_000;
        string connection = options.ToString();
        await using var writerA = RedisRegionalStore.Connect(connection);
        await using var writerB = RedisRegionalStore.Connect(connection);
        await using var remover = RedisRegionalStore.Connect(connection);
        var rounds = Enumerable.Range(0, users).Select(async i =>
        {
            long user = first + i;
            await Task.WhenAll(
                writerA.WriteAsync([Group(user, ("ctr:v1", 1_000 + i, 1), ("cvr:v1", 1_000 + i, 1))], default),
                writerB.WriteAsync([Group(user, ("ctr:v1", 1_001 + i, 2), ("cvr:v1", 1_001 + i, 2))], default),
                remover.RemoveAsync(user, field: null, removedAtUnixMs: 1_002 + i, remember: Ttl, default));
            bool keptAfter = i % 2 == 0 && (await remover.WriteAsync([Group(user, ("ctr:v1", 1_003 + i, 3))], default)).Late == 0;
            return (user, keptAfter);
        });

        foreach (var (user, keptAfter) in await Task.WhenAll(rounds))
        {
            Assert.Equal(keptAfter ? [3] : null, await ReadAsync(writerA, "ctr:v1", user));
            Assert.Null(await ReadAsync(writerB, "cvr:v1", user));
        }
    }

    /// <summary>Writes out of order, removes, and writes across the removal, reading the store after each step.</summary>
    private static async Task AssertNewerWinsAsync(RedisRegionalStore store, long user)
    {
        const string field = "ctr:v1", other = "cvr:v1";
        Assert.Equal(0, (await store.WriteAsync([Group(user, (field, 200, 2))], default)).Late);
        Assert.Equal(1, (await store.WriteAsync([Group(user, (field, 100, 1), (other, 100, 9))], default)).Late); // older: dropped
        Assert.Equal(1, (await store.WriteAsync([Group(user, (field, 200, 3))], default)).Late); // the same stamp is not newer
        Assert.Equal([2], await ReadAsync(store, field, user));
        Assert.Equal([9], await ReadAsync(store, other, user));

        // One field removed at 300: its writes stamped up to 300 are dropped, the other field's are not.
        await store.RemoveAsync(user, field, removedAtUnixMs: 300, remember: Ttl, default);
        Assert.Equal(1, (await store.WriteAsync([Group(user, (field, 250, 4), (other, 250, 8))], default)).Late);
        Assert.Null(await ReadAsync(store, field, user));
        Assert.Equal([8], await ReadAsync(store, other, user));

        // The whole user removed at 400: nothing stamped before it comes back; what is inferred after it is written.
        await store.RemoveAsync(user, field: null, removedAtUnixMs: 400, remember: Ttl, default);
        Assert.Equal(2, (await store.WriteAsync([Group(user, (field, 350, 5), (other, 399, 7))], default)).Late);
        Assert.Null(await ReadAsync(store, field, user));
        Assert.Null(await ReadAsync(store, other, user));
        Assert.Equal(0, (await store.WriteAsync([Group(user, (field, 401, 6))], default)).Late);
        Assert.Equal([6], await ReadAsync(store, field, user));
    }

    private static RegionalWriteGroup Group(long user, params (string Field, long Stamp, byte Value)[] fields) =>
        new(user, [.. fields.Select(f => new RegionalField(f.Field, [f.Value], f.Stamp))], Ttl);

    private static async Task<byte[]?> ReadAsync(RedisRegionalStore store, string field, long user) =>
        (await store.ReadAsync(field, new long[] { user }, valueBytes: 1, default))[0];
}
