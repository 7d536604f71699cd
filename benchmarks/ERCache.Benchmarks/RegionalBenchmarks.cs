using BenchmarkDotNet.Attributes;
using ERCache.Redis;
using ERCache.Regional;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using StackExchange.Redis;

namespace ERCache.Benchmarks;

/// <summary>
/// The regional tier against a real Redis (or Garnet) at <c>ERCACHE_REDIS</c> (default <c>127.0.0.1:6379</c>):
/// lookups of 1 and 64 users, ERCache's one round trip against <see cref="IDistributedCache.GetAsync"/> per user
/// (Microsoft.Extensions.Caching.StackExchangeRedis on the same server), both decoding the same 256-dimension
/// Float16 values; and writes of 64 users × 3 models, grouped (one write per user, one round trip) against one
/// <see cref="IDistributedCache.SetAsync"/> per (user, model).
/// </summary>
[MemoryDiagnoser]
public class RegionalBenchmarks
{
    private const int Dimensions = 256, Users = 64;
    private static readonly int ValueBytes = RegionalValue.Length(StorageFormat.Float16, Dimensions);
    private static readonly string[] Models = ["ctr", "cvr", "engagement"];
    private readonly float[] _vector = new float[Dimensions];
    private ConnectionMultiplexer _connection = null!;
    private RedisRegionalStore _store = null!;
    private RedisCache _distributed = null!;
    private long[] _users = [];
    private List<RegionalWriteGroup> _groups = [];
    private long _stamp;

    [GlobalSetup]
    public void Setup()
    {
        _stamp = 1;
        string server = Environment.GetEnvironmentVariable("ERCACHE_REDIS") is { Length: > 0 } configured ? configured : "127.0.0.1:6379";
        _connection = ConnectionMultiplexer.Connect(server);
        _store = new RedisRegionalStore(_connection);
        _distributed = new RedisCache(new RedisCacheOptions { ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(_connection), InstanceName = "bench:" });
        _users = Enumerable.Range(1, Users).Select(u => (long)u).ToArray();
        
        _groups = _users.Select(u => new RegionalWriteGroup(
            u,
            Models.Select(m => new RegionalField(RegionalValue.Field(m, "v1"), RegionalValue.Encode(StorageFormat.Float16, RegionalValue.Fingerprint(m, "v1", Dimensions, StorageFormat.Float16), u, 0, Row(u)), 0)).ToArray(),
            TimeSpan.FromHours(1))).ToList();
        _store.WriteAsync(_groups, CancellationToken.None).GetAwaiter().GetResult();
        foreach (var group in _groups)
        {
            foreach (var field in group.Fields)
            {
                _distributed.Set($"{field.Field}:{group.UserId}", field.Value, new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) });
            }
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _distributed.Dispose();
        _connection.Dispose();
    }

    [Benchmark(Baseline = true)]
    public async Task<float> DistributedCacheGet1() => Decode(await _distributed.GetAsync($"ctr:v1:{_users[0]}"), _users[0]);

    [Benchmark]
    public async Task<float> ERCacheLookup1() => Decode((await _store.ReadAsync("ctr:v1", _users.AsMemory(0, 1), ValueBytes, CancellationToken.None))[0], _users[0]);

    [Benchmark]
    public async Task<float> DistributedCacheGet64()
    {
        float sum = 0;
        foreach (long user in _users)
        {
            sum += Decode(await _distributed.GetAsync($"ctr:v1:{user}"), user); // one round trip each: its API is per key
        }

        return sum;
    }

    [Benchmark]
    public async Task<float> ERCacheLookup64()
    {
        var values = await _store.ReadAsync("ctr:v1", _users, ValueBytes, CancellationToken.None);
        float sum = 0;
        for (int i = 0; i < values.Length; i++)
        {
            sum += Decode(values[i], _users[i]);
        }

        return sum;
    }

    /// <summary>64 users × 3 models: one grouped write per user (a newer-wins script), all in one round trip (192
    /// values, 64 scripts). Each invocation stamps its values later than the last, so every one is written.</summary>
    [Benchmark]
    public Task ERCacheGroupedWrite64x3()
    {
        long stamp = ++_stamp;
        var groups = _groups.Select(g => g with { Fields = [.. g.Fields.Select(f => f with { WrittenAtUnixMs = stamp })] }).ToList();
        return _store.WriteAsync(groups, CancellationToken.None);
    }

    /// <summary>The same 192 values, one <c>SetAsync</c> per (user, model), awaited in turn.</summary>
    [Benchmark]
    public async Task DistributedCacheSet64x3()
    {
        var expiry = new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromHours(1) };
        foreach (var group in _groups)
        {
            foreach (var field in group.Fields)
            {
                await _distributed.SetAsync($"{field.Field}:{group.UserId}", field.Value, expiry);
            }
        }
    }

    private float Decode(byte[]? value, long user) =>
        value is not null && RegionalValue.TryDecode(value, StorageFormat.Float16, RegionalValue.Fingerprint(Models[0], "v1", Dimensions, StorageFormat.Float16), user, _vector, out _)
            ? _vector[0]
            : throw new InvalidOperationException($"user {user}: no value");

    private static float[] Row(long user) => Enumerable.Range(0, Dimensions).Select(j => (user + j) * 0.01f).ToArray();
}
