using ERCache.Health;
using ERCache.Redis.Tests.Infrastructure;
using ERCache.Regional;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace ERCache.Redis.Tests;

/// <summary>DESIGN §2 rules 2, 4, 5, 8 and 9 against real Redis and Garnet servers, with several hosts (caches) sharing
/// one store.</summary>
public sealed class RegionalTierTests(SharedServers servers) : IClassFixture<SharedServers>
{
    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_vector_computed_on_one_host_is_a_regional_hit_on_another_with_its_original_age(ServerKind kind)
    {
        long user = servers.Users(1);
        await using var a = new RegionalHost(servers[kind].ConnectionString);
        await using var b = new RegionalHost(servers[kind].ConnectionString);

        var fresh = await a.GetAsync(user);
        await a.Cache.FlushRegionalWritesAsync();
        b.FakeClock.Advance(TimeSpan.FromSeconds(20));
        var regional = await b.GetAsync(user);
        b.FakeClock.Advance(TimeSpan.FromSeconds(30));
        var local = await b.GetAsync(user);
        b.FakeClock.Advance(TimeSpan.FromSeconds(10)); // 60 s after host a's inference: expired everywhere
        var expired = await b.GetAsync(user);

        Assert.Equal(EmbeddingSource.Fresh, fresh.Result.Source);
        Assert.Equal(EmbeddingSource.Regional, regional.Result.Source);
        Assert.Equal(TimeSpan.FromSeconds(20), regional.Result.Age);
        Assert.True(UserTower.BelongsTo(regional.Vector, user));
        Assert.Equal(EmbeddingSource.Direct, local.Result.Source); // copied into b's tiers with its original write time
        Assert.Equal(TimeSpan.FromSeconds(50), local.Result.Age);
        Assert.Equal(EmbeddingSource.Fresh, expired.Result.Source);
        Assert.Equal(1, b.Towers["ctr"].Users); // only the expired request ran b's tower
        Assert.Equal(1, RegionalHost.Sum(b.Reads, "outcome", "hit"));
    }

    [Fact]
    public async Task Each_regional_round_trip_is_one_span_with_its_operation_and_outcome()
    {
        using var tests = new System.Diagnostics.ActivitySource("ERCache.Tests");
        var spans = new System.Collections.Concurrent.ConcurrentQueue<System.Diagnostics.Activity>();
        string? root = null;
        using var listener = new System.Diagnostics.ActivityListener
        {
            ShouldListenTo = source => source.Name is ERCache.Diagnostics.ERCacheDiagnostics.ActivitySourceName or "ERCache.Tests",
            Sample = (ref System.Diagnostics.ActivityCreationOptions<System.Diagnostics.ActivityContext> _) => System.Diagnostics.ActivitySamplingResult.AllData,
            ActivityStopped = a =>
            {
                if (a.OperationName == ERCache.Diagnostics.ERCacheDiagnostics.RegionalActivity && a.RootId == Volatile.Read(ref root))
                {
                    spans.Enqueue(a); // this test's spans only: other tests run at the same time
                }
            },
        };
        System.Diagnostics.ActivitySource.AddActivityListener(listener);
        long user = servers.Users(1);
        await using var host = new RegionalHost(servers[ServerKind.Redis].ConnectionString);

        using (var parent = tests.StartActivity("request"))
        {
            Volatile.Write(ref root, parent!.RootId);
            await host.GetAsync(user);                   // a lookup (a miss), then inference
            await host.Cache.FlushRegionalWritesAsync(); // the grouped write
        }

        var read = Assert.Single(spans, s => (string?)s.GetTagItem("operation") == "read");
        var write = Assert.Single(spans, s => (string?)s.GetTagItem("operation") == "write");
        Assert.Equal((1, "none"), (read.GetTagItem("batch_size"), read.GetTagItem("outcome")));
        Assert.Equal((1, "none"), (write.GetTagItem("batch_size"), write.GetTagItem("outcome")));
        Assert.Equal(System.Diagnostics.ActivityKind.Client, read.Kind);
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_regional_value_older_than_the_direct_ttl_serves_only_when_inference_fails(ServerKind kind)
    {
        long user = servers.Users(2);
        await using var a = new RegionalHost(servers[kind].ConnectionString);
        await using var b = new RegionalHost(servers[kind].ConnectionString);
        await a.GetAsync(user);
        await a.GetAsync(user + 1);
        await a.Cache.FlushRegionalWritesAsync();
        b.FakeClock.Advance(TimeSpan.FromMinutes(10));

        var fresh = await b.GetAsync(user); // inference works: the stale regional value is not used
        b.Towers["ctr"].Failing = true;
        var failover = await b.GetAsync(user + 1);

        Assert.Equal(EmbeddingSource.Fresh, fresh.Result.Source);
        Assert.Equal(EmbeddingSource.Failover, failover.Result.Source);
        Assert.Equal(TimeSpan.FromMinutes(10), failover.Result.Age);
        Assert.Equal(InferenceFailureCause.Error, failover.Result.FailureCause);
        Assert.True(UserTower.BelongsTo(failover.Vector, user + 1));
        Assert.Equal(1, b.Cache.GetTierStatistics("ctr", TierKind.Direct)!.Value.Count); // rule 7: the failover hit is not written back
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_new_version_never_sees_an_older_versions_values(ServerKind kind)
    {
        long user = servers.Users(1);
        await using var v1 = new RegionalHost(servers[kind].ConnectionString, version: "v1");
        await using var v2 = new RegionalHost(servers[kind].ConnectionString, version: "v2");
        await v1.GetAsync(user);
        await v1.Cache.FlushRegionalWritesAsync();
        v2.Towers["ctr"].Failing = true;

        var result = await v2.GetAsync(user);

        Assert.Equal(EmbeddingSource.Fallback, result.Result.Source);
        Assert.Equal(1, RegionalHost.Sum(v2.Reads, "outcome", "miss"));
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_value_that_does_not_decode_exactly_is_never_served(ServerKind kind)
    {
        long first = servers.Users(5);
        await using var host = new RegionalHost(servers[kind].ConnectionString);
        await host.GetAsync(first + 4); // a genuine value of another user, to copy under this user's key
        await host.Cache.FlushRegionalWritesAsync();
        host.FakeClock.Advance(TimeSpan.FromHours(2)); // the local tiers have nothing valid any more
        using var redis = await ConnectionMultiplexer.ConnectAsync(servers[kind].ConnectionString);
        var db = redis.GetDatabase();
        string field = "ctr:v1";
        byte[] genuine = (await db.StringGetAsync(RedisRegionalStore.ValueKeyOf(first + 4, field)))!;
        var nowMs = host.Clock.GetUtcNow().ToUnixTimeMilliseconds();
        byte[] otherVersion = (byte[])genuine.Clone();
        otherVersion[24] ^= 0xFF; // the version fingerprint
        byte[] fresh = (byte[])genuine.Clone();
        BitConverter.TryWriteBytes(fresh.AsSpan(8), nowMs); // a current stamp, so only the header check can refuse it
        await db.StringSetAsync(RedisRegionalStore.ValueKeyOf(first, field), fresh[..^4]);                     // wrong length
        await db.StringSetAsync(RedisRegionalStore.ValueKeyOf(first + 1, field), Restamp(otherVersion, nowMs)); // another version
        await db.StringSetAsync(RedisRegionalStore.ValueKeyOf(first + 2, field), fresh);                       // another user's value
        await db.StringSetAsync(RedisRegionalStore.ValueKeyOf(first + 3, field), Random.Shared.GetItems<byte>(new byte[256], fresh.Length));
        host.Towers["ctr"].Failing = true;

        for (long user = first; user < first + 4; user++)
        {
            var (result, vector) = await host.GetAsync(user);
            Assert.Equal(EmbeddingSource.Fallback, result.Source);
            Assert.All(vector, v => Assert.Equal(0f, v));
        }

        Assert.Equal(4, RegionalHost.Sum(host.Reads, "outcome", "decode_failure"));

        // The refusals are logged with what the value held, one line per kind: the two copies of user first + 4's value
        // (the first one's fingerprint changed too: the user is checked first) make one line.
        string[] lines = [.. host.Logs.GetSnapshot().Where(r => r.Id.Id == 41).Select(r => r.Message)];
        Assert.Contains(lines, m => m.Contains($"for user {first}: Float32 of 8 dimensions in 60 bytes, where this model reads Float32 of 8 in 64.", StringComparison.Ordinal));
        Assert.Contains(lines, m => m.Contains($"for user {first + 1}: the value of user {first + 4}, under this user's key.", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, m => m.Contains($"for user {first + 2}:", StringComparison.Ordinal));
        var health = await new ERCacheHealthCheck(host.Cache, new ERCacheHealthCheckOptions { MinimumResults = 4 })
            .CheckHealthAsync(new HealthCheckContext { Registration = new HealthCheckRegistration("ercache", _ => null!, null, null) });
        Assert.Equal(HealthStatus.Degraded, health.Status);
        Assert.Contains("of 4 regional values found over the last 00:01:00 did not decode", health.Description, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task Writes_are_grouped_one_per_user_carrying_every_models_vector(ServerKind kind)
    {
        long first = servers.Users(10);
        string[] models = ["ctr", "cvr", "engagement"];
        await using var host = new RegionalHost(servers[kind].ConnectionString, models: models);
        for (long user = first; user < first + 10; user++)
        {
            foreach (string model in models)
            {
                await host.GetAsync(user, model);
            }
        }

        await host.Cache.FlushRegionalWritesAsync();

        Assert.Equal(10, RegionalHost.Sum(host.Groups));
        Assert.Equal(30, RegionalHost.Sum(host.Values));
        using var redis = await ConnectionMultiplexer.ConnectAsync(servers[kind].ConnectionString);
        var db = redis.GetDatabase();
        foreach (string model in models)
        {
            var ttl = await db.KeyTimeToLiveAsync(RedisRegionalStore.ValueKeyOf(first, $"{model}:v1"));
            Assert.InRange(ttl!.Value, TimeSpan.FromMinutes(59), TimeSpan.FromHours(1)); // the failover TTL bounds the store's memory
        }
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_full_write_queue_drops_and_counts_while_requests_are_unaffected(ServerKind kind)
    {
        long first = servers.Users(10);
        await using var host = new RegionalHost(servers[kind].ConnectionString, o => o.Regional.QueueCapacity = 3);

        for (long user = first; user < first + 10; user++)
        {
            Assert.Equal(EmbeddingSource.Fresh, (await host.GetAsync(user)).Result.Source);
        }

        await host.Cache.FlushRegionalWritesAsync();

        Assert.Equal(7, RegionalHost.Sum(host.Dropped, "reason", "queue_full"));
        Assert.Equal(3, RegionalHost.Sum(host.Values));
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_model_that_opts_out_neither_reads_nor_writes_the_store(ServerKind kind)
    {
        long user = servers.Users(1);
        await using var a = new RegionalHost(servers[kind].ConnectionString, o => o.Models["ctr"].Regional.Enabled = false);

        await a.GetAsync(user);
        await a.Cache.FlushRegionalWritesAsync();

        Assert.Equal(0, RegionalHost.Sum(a.Values));
        Assert.Equal(0, RegionalHost.Sum(a.Reads));
        using var redis = await ConnectionMultiplexer.ConnectAsync(servers[kind].ConnectionString);
        Assert.False(await redis.GetDatabase().KeyExistsAsync(RedisRegionalStore.StampsKeyOf(user))); // nothing of the user written
    }

    [Theory]
    [InlineData(ServerKind.Redis, StorageFormat.Int8)]
    [InlineData(ServerKind.Garnet, StorageFormat.Float16)]
    public async Task Values_travel_in_the_models_regional_format(ServerKind kind, StorageFormat format)
    {
        long user = servers.Users(1);
        await using var a = new RegionalHost(servers[kind].ConnectionString, o => o.Models["ctr"].Regional.Format = format);
        await using var b = new RegionalHost(servers[kind].ConnectionString, o => o.Models["ctr"].Regional.Format = format);
        await a.GetAsync(user);
        await a.Cache.FlushRegionalWritesAsync();

        var (result, vector) = await b.GetAsync(user);

        Assert.Equal(EmbeddingSource.Regional, result.Source);
        using var redis = await ConnectionMultiplexer.ConnectAsync(servers[kind].ConnectionString);
        byte[] stored = (await redis.GetDatabase().StringGetAsync(RedisRegionalStore.ValueKeyOf(user, "ctr:v1")))!;
        Assert.Equal(32 + (format == StorageFormat.Int8 ? RegionalHost.Dimensions + 8 : RegionalHost.Dimensions * 2), stored.Length);
        for (int j = 0; j < vector.Length; j++)
        {
            Assert.Equal(user + j, vector[j], (user + j) * 0.001); // lossy formats: close to the user's own vector
        }
    }

    private static byte[] Restamp(byte[] value, long nowMs)
    {
        BitConverter.TryWriteBytes(value.AsSpan(8), nowMs);
        return value;
    }
}
