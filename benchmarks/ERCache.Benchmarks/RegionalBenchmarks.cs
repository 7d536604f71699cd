using BenchmarkDotNet.Attributes;
using ERCache.Inference;
using ERCache.Models;
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
/// <see cref="IDistributedCache.SetAsync"/> per (user, model). And a restart's prefetch beside invalidation: 4,096
/// users' values copied from the store into emptied tiers, against the same users read by requests (64 per
/// <c>GetManyAsync</c>) as a restarted host without it would.
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
    private const int PrefetchUsers = 4096, RequestUsers = 64;
    private long[] _prefetchUsers = [];
    private EmbeddingCache _cache = null!;
    private ModelVersionState _prefetched = null!;
    private readonly float[] _requestRows = new float[RequestUsers * Dimensions];
    private readonly EmbeddingResult[] _requestResults = new EmbeddingResult[RequestUsers];

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

        SetupPrefetch();
    }

    /// <summary>4,096 users of <c>ctr</c> written now (fresh for the direct tier), and a cache on the same
    /// store.</summary>
    private void SetupPrefetch()
    {
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        ulong fingerprint = RegionalValue.Fingerprint(Models[0], "v1", Dimensions, StorageFormat.Float16);
        _prefetchUsers = [.. Enumerable.Range(1_000_000, PrefetchUsers).Select(u => (long)u)];
        var groups = _prefetchUsers.Select(u => new RegionalWriteGroup(
            u, [new RegionalField(RegionalValue.Field(Models[0], "v1"), RegionalValue.Encode(StorageFormat.Float16, fingerprint, u, now, Row(u)), now)],
            TimeSpan.FromHours(1))).ToList();
        _store.WriteAsync(groups, CancellationToken.None).GetAwaiter().GetResult();

        var options = new ERCacheOptions
        {
            Models =
            {
                [Models[0]] = new ModelOptions
                {
                    Dimensions = Dimensions,
                    Version = "v1",
                    Direct = { Ttl = TimeSpan.FromMinutes(30), Capacity = 2 * PrefetchUsers },
                    Failover = { Ttl = TimeSpan.FromHours(1), Capacity = 2 * PrefetchUsers },
                    Regional = { Format = StorageFormat.Float16 },
                },
            },
            Regional = { Invalidation = false, Timeout = TimeSpan.FromSeconds(1) },
        };
        _cache = EmbeddingCache.Create(
            options, new Dictionary<string, IEmbeddingInference> { [Models[0]] = new NoTower() }, new EmbeddingCacheServices { RegionalStore = _store });
        _prefetched = _cache.ResolveState(Models[0]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cache.Dispose();
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

    /// <summary>The restart's prefetch beside invalidation: the tiers emptied, then 4,096 users' values read in round
    /// trips of <c>Regional:MaxBatchSize</c> (512) and copied into both tiers.</summary>
    [Benchmark]
    public async Task<long> ERCachePrefetch4096()
    {
        _prefetched.Current.DropLocal();
        var counts = await _prefetched.Current.PrefetchRegionalAsync(_prefetchUsers, CancellationToken.None);
        return counts.Direct == PrefetchUsers ? counts.Direct : throw new InvalidOperationException($"prefetched {counts}");
    }

    /// <summary>The same users without the prefetch: the tiers emptied, then read by requests of 64 users each, every
    /// user a regional hit copied into both tiers.</summary>
    [Benchmark]
    public async Task<int> ERCacheRequests4096()
    {
        _prefetched.Current.DropLocal();
        int hits = 0;
        for (int first = 0; first < PrefetchUsers; first += RequestUsers)
        {
            await _cache.GetManyAsync(Models[0], _prefetchUsers.AsMemory(first, RequestUsers), _requestRows, _requestResults);
            hits += _requestResults.Count(r => r.Source == EmbeddingSource.Regional);
        }

        return hits == PrefetchUsers ? hits : throw new InvalidOperationException($"{hits} regional hits of {PrefetchUsers}");
    }

    /// <summary>A tower never called: every user is in the store.</summary>
    private sealed class NoTower : IEmbeddingInference
    {
        public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken) =>
            throw new InvalidOperationException("every user is in the regional store");
    }

    private float Decode(byte[]? value, long user) =>
        value is not null && RegionalValue.TryDecode(value, StorageFormat.Float16, RegionalValue.Fingerprint(Models[0], "v1", Dimensions, StorageFormat.Float16), user, _vector, out _)
            ? _vector[0]
            : throw new InvalidOperationException($"user {user}: no value");

    private static float[] Row(long user) => Enumerable.Range(0, Dimensions).Select(j => (user + j) * 0.01f).ToArray();
}
