using ERCache.Diagnostics;
using ERCache.Redis.Tests.Infrastructure;
using StackExchange.Redis;

namespace ERCache.Redis.Tests;

/// <summary>Large and damaged lookups and writes against real Redis and Garnet: a lookup is split into round trips of
/// <c>Regional:MaxBatchSize</c> users; one key the server refuses to read or write, or one value of megabytes, is that
/// user's miss or lost write, never the batch's or the breaker's.</summary>
public sealed class BatchLookupTests(SharedServers servers) : IClassFixture<SharedServers>
{
    [Theory]
    [InlineData(ServerKind.Redis, "wrong type")]
    [InlineData(ServerKind.Garnet, "wrong type")]
    [InlineData(ServerKind.Redis, "8 MiB")]
    [InlineData(ServerKind.Garnet, "8 MiB")]
    public async Task One_damaged_key_is_that_users_miss_and_the_other_fifteen_are_served(ServerKind kind, string damage)
    {
        long[] users = SixteenUsers();
        await using var writer = new RegionalHost(servers[kind].ConnectionString);
        await using var reader = new RegionalHost(servers[kind].ConnectionString);
        await writer.Cache.GetManyAsync("ctr", users, new float[16 * RegionalHost.Dimensions], new EmbeddingResult[16]);
        await writer.Cache.FlushRegionalWritesAsync();
        if (damage == "wrong type")
        {
            await MakeValueKeyAHashAsync(kind, users[5]); // GETRANGE on it: WRONGTYPE
        }
        else
        {
            await WriteForeignValueAsync(kind, users[5], 8 << 20); // cut to one byte past a value: decodes as nothing
        }

        var results = new EmbeddingResult[16];
        await reader.Cache.GetManyAsync("ctr", users, new float[16 * RegionalHost.Dimensions], results);

        Assert.Equal(15, results.Count(r => r.Source == EmbeddingSource.Regional));
        Assert.Equal(EmbeddingSource.Fresh, results[5].Source);
        Assert.Equal(damage == "8 MiB" ? 1 : 0, RegionalHost.Sum(reader.Reads, "outcome", "decode_failure"));
        Assert.Equal(0, RegionalHost.Sum(reader.Failures)); // the lookup did not fail: nothing for the breaker to count
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_key_of_the_wrong_type_refuses_only_that_users_write_and_the_other_fifteen_land(ServerKind kind)
    {
        long[] users = SixteenUsers();
        await MakeStampsKeyAStringAsync(kind, users[5]); // the write script's HGET: WRONGTYPE

        await using var writer = new RegionalHost(servers[kind].ConnectionString);
        await writer.Cache.GetManyAsync("ctr", users, new float[16 * RegionalHost.Dimensions], new EmbeddingResult[16]);
        await writer.Cache.FlushRegionalWritesAsync(); // the 16 users' values in one round trip

        Assert.Equal(15, RegionalHost.Sum(writer.Values));
        Assert.Equal(1, RegionalHost.Sum(writer.Dropped, "reason", "refused"));
        Assert.Equal(1, RegionalHost.Sum(writer.Dropped)); // nothing else dropped: not the whole round trip
        Assert.Equal(0, RegionalHost.Sum(writer.Failures)); // and nothing for the breaker to count

        await using var reader = new RegionalHost(servers[kind].ConnectionString);
        var results = new EmbeddingResult[16];
        await reader.Cache.GetManyAsync("ctr", users, new float[16 * RegionalHost.Dimensions], results);
        Assert.Equal(15, results.Count(r => r.Source == EmbeddingSource.Regional));
        Assert.Equal(EmbeddingSource.Fresh, results[5].Source);
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task The_store_sends_at_most_one_byte_more_than_a_value_of_the_model(ServerKind kind)
    {
        long[] users = SixteenUsers();
        await using var writer = new RegionalHost(servers[kind].ConnectionString);
        await writer.Cache.GetManyAsync("ctr", users, new float[16 * RegionalHost.Dimensions], new EmbeddingResult[16]);
        await writer.Cache.FlushRegionalWritesAsync();
        await WriteForeignValueAsync(kind, users[5], 8 << 20);

        var values = await writer.Store.ReadAsync(Field, users, ValueBytes, CancellationToken.None);

        Assert.Equal(ValueBytes + 1, values[5]!.Length); // cut by the server: not 8 MiB on the connection
        Assert.All(values.Where((_, i) => i != 5), v => Assert.Equal(ValueBytes, v!.Length));
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_lookup_larger_than_MaxBatchSize_goes_in_round_trips_of_that_size(ServerKind kind)
    {
        const int count = 1_000, batch = 64;
        long first = servers.Users(count);
        long[] users = [.. Enumerable.Range(0, count).Select(i => first + i)];
        await using var writer = new RegionalHost(servers[kind].ConnectionString);
        await using var reader = new RegionalHost(servers[kind].ConnectionString, o => o.Regional.MaxBatchSize = batch);
        await writer.Cache.GetManyAsync("ctr", users, new float[count * RegionalHost.Dimensions], new EmbeddingResult[count]);
        await writer.Cache.FlushRegionalWritesAsync();

        var vectors = new float[count * RegionalHost.Dimensions];
        var results = new EmbeddingResult[count];
        await reader.Cache.GetManyAsync("ctr", users, vectors, results);

        Assert.All(results, r => Assert.Equal(EmbeddingSource.Regional, r.Source));
        for (int i = 0; i < count; i++)
        {
            Assert.True(UserTower.BelongsTo(vectors.AsSpan(i * RegionalHost.Dimensions, RegionalHost.Dimensions), users[i]), $"user {users[i]}");
        }

        int roundTrips = reader.Durations.GetMeasurementSnapshot().Count(m => Equals(m.Tags.GetValueOrDefault(ERCacheDiagnostics.OperationTag), "read"));
        Assert.Equal((count + batch - 1) / batch, roundTrips);
    }

    private const string Field = "ctr:v1";
    private static readonly int ValueBytes = 32 + (RegionalHost.Dimensions * sizeof(float)); // the header and a Float32 row

    /// <summary>Writes <paramref name="bytes"/> of something else under the user's value key, as another program
    /// sharing the prefix might.</summary>
    private async Task WriteForeignValueAsync(ServerKind kind, long user, int bytes)
    {
        await using var admin = await ConnectionMultiplexer.ConnectAsync(servers[kind].ConnectionString);
        await admin.GetDatabase().StringSetAsync(RedisRegionalStore.ValueKeyOf(user, Field), new byte[bytes]);
    }

    /// <summary>Sixteen users no other test uses.</summary>
    private long[] SixteenUsers()
    {
        long first = servers.Users(16);
        return [.. Enumerable.Range(0, 16).Select(i => first + i)];
    }

    /// <summary>Puts a hash where the user's value (a string) belongs, so the server refuses to read it.</summary>
    private async Task MakeValueKeyAHashAsync(ServerKind kind, long user)
    {
        await using var admin = await ConnectionMultiplexer.ConnectAsync(servers[kind].ConnectionString);
        var db = admin.GetDatabase();
        await db.KeyDeleteAsync(RedisRegionalStore.ValueKeyOf(user, Field));
        await db.HashSetAsync(RedisRegionalStore.ValueKeyOf(user, Field), "not", "a string");
    }

    /// <summary>Puts a string where the user's stamps (a hash) belong, so the write script fails on that key.</summary>
    private async Task MakeStampsKeyAStringAsync(ServerKind kind, long user)
    {
        await using var admin = await ConnectionMultiplexer.ConnectAsync(servers[kind].ConnectionString);
        await admin.GetDatabase().StringSetAsync(RedisRegionalStore.StampsKeyOf(user), "not a hash");
    }
}
