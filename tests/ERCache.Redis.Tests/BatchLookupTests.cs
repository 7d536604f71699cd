using ERCache.Diagnostics;
using ERCache.Redis.Tests.Infrastructure;
using StackExchange.Redis;

namespace ERCache.Redis.Tests;

/// <summary>Large and damaged lookups and writes against real Redis and Garnet: a lookup is split into round trips of
/// <c>Regional:MaxBatchSize</c> users, and one key the server refuses to read or write is that user's miss or lost
/// write, never the batch's or the breaker's.</summary>
public sealed class BatchLookupTests(SharedServers servers) : IClassFixture<SharedServers>
{
    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_key_of_the_wrong_type_is_that_users_miss_and_the_other_fifteen_are_served(ServerKind kind)
    {
        long[] users = SixteenUsers();
        await using var writer = new RegionalHost(servers[kind].ConnectionString);
        await using var reader = new RegionalHost(servers[kind].ConnectionString);
        await writer.Cache.GetManyAsync("ctr", users, new float[16 * RegionalHost.Dimensions], new EmbeddingResult[16]);
        await writer.Cache.FlushRegionalWritesAsync();
        await MakeKeyAStringAsync(kind, users[5]); // HGET on it: WRONGTYPE

        var results = new EmbeddingResult[16];
        await reader.Cache.GetManyAsync("ctr", users, new float[16 * RegionalHost.Dimensions], results);

        Assert.Equal(15, results.Count(r => r.Source == EmbeddingSource.Regional));
        Assert.Equal(EmbeddingSource.Fresh, results[5].Source);
        Assert.Equal(0, RegionalHost.Sum(reader.Failures)); // the lookup did not fail: nothing for the breaker to count
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_key_of_the_wrong_type_refuses_only_that_users_write_and_the_other_fifteen_land(ServerKind kind)
    {
        long[] users = SixteenUsers();
        await MakeKeyAStringAsync(kind, users[5]); // the write script: WRONGTYPE

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

    /// <summary>Sixteen users no other test uses.</summary>
    private long[] SixteenUsers()
    {
        long first = servers.Users(16);
        return [.. Enumerable.Range(0, 16).Select(i => first + i)];
    }

    /// <summary>Puts a string where the user's hash belongs, so the server refuses hash commands on it.</summary>
    private async Task MakeKeyAStringAsync(ServerKind kind, long user)
    {
        await using var admin = await ConnectionMultiplexer.ConnectAsync(servers[kind].ConnectionString);
        await admin.GetDatabase().StringSetAsync(RedisRegionalStore.KeyOf(user), "not a hash");
    }
}
