using System.Collections.Concurrent;
using BenchmarkDotNet.Attributes;
using ERCache.Inference;
using Microsoft.Extensions.Caching.Memory;

namespace ERCache.Benchmarks;

/// <summary>
/// One direct-tier hit of a 256-dimension vector into a caller buffer, against the peers: a
/// <see cref="ConcurrentDictionary{TKey, TValue}"/> of <c>float[]</c> plus a copy (the floor) and
/// <see cref="MemoryCache"/> of <c>float[]</c> plus a copy. Each invocation reads 1,024 users in a
/// pre-shuffled order, so the large store is read at random.
/// </summary>
[MemoryDiagnoser]
public class HitPathBenchmarks
{
    private const int Dimensions = 256;
    private const int Reads = 1024;
    private readonly float[] _destination = new float[Dimensions];
    private long[] _order = [];
    private ConcurrentDictionary<long, float[]> _dictionary = new();
    private MemoryCache _memoryCache = null!;
    private EmbeddingCache _cache = null!;
    private EmbeddingCache _cacheFloat16 = null!;
    private EmbeddingCache _cacheInt8 = null!;

    [Params(10_000, 1_000_000)]
    public int Entries { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        _order = Enumerable.Range(0, Reads).Select(_ => (long)rng.Next(Entries)).ToArray();
        _dictionary = new ConcurrentDictionary<long, float[]>();
        _memoryCache = new MemoryCache(new MemoryCacheOptions { SizeLimit = Entries });
        _cache = CreateCache("Float32", users: Entries);
        _cacheFloat16 = CreateCache("Float16", users: Entries);
        _cacheInt8 = CreateCache("Int8", users: Entries);

        // The peers hold the same vectors.
        var vector = new float[Dimensions];
        for (long user = 0; user < Entries; user++)
        {
            vector.AsSpan().Fill(user * 0.001f);
            var copy = vector.ToArray();
            _dictionary[user] = copy;
            using var entry = _memoryCache.CreateEntry(user);
            entry.Size = 1;
            entry.Value = copy;
        }
    }

    private static EmbeddingCache CreateCache(string format, int users)
    {
        var options = new ERCacheOptions
        {
            Models =
            {
                ["m"] = new ModelOptions
                {
                    Dimensions = Dimensions,
                    Inference = new InferenceOptions { Timeout = TimeSpan.FromMinutes(1), MaxBatchSize = 1024 }, // the warm-up must not time out
                    Direct = new TierOptions { Ttl = TimeSpan.FromDays(1), Capacity = users, Eviction = EvictionStrategy.Lru, Format = Enum.Parse<StorageFormat>(format) },
                    Failover = new TierOptions { Enabled = false },
                },
            },
        };
        var cache = EmbeddingCache.Create(options, new Dictionary<string, IEmbeddingInference> { ["m"] = new DelegateInference(Fill) });

        // Filled through the public API: one GetManyAsync per 1,024 users.
        var ids = Enumerable.Range(0, users).Select(i => (long)i).ToArray();
        var vectors = new float[1024 * Dimensions];
        var results = new EmbeddingResult[1024];
        for (int start = 0; start < ids.Length; start += 1024)
        {
            int n = Math.Min(1024, ids.Length - start);
            cache.GetManyAsync("m", ids.AsMemory(start, n), vectors.AsMemory(0, n * Dimensions), results.AsMemory(0, n)).AsTask().GetAwaiter().GetResult();
        }

        return cache;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cache.Dispose();
        _cacheFloat16.Dispose();
        _cacheInt8.Dispose();
        _memoryCache.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Reads)]
    public float ConcurrentDictionary()
    {
        foreach (long user in _order)
        {
            if (_dictionary.TryGetValue(user, out var vector))
            {
                vector.CopyTo(_destination, 0);
            }
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Reads)]
    public float MemoryCache()
    {
        foreach (long user in _order)
        {
            if (_memoryCache.TryGetValue(user, out float[]? vector))
            {
                vector!.CopyTo(_destination, 0);
            }
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheFloat32() => Hits(_cache);

    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheFloat16() => Hits(_cacheFloat16);

    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheInt8() => Hits(_cacheInt8);

    private float Hits(EmbeddingCache cache)
    {
        var destination = _destination.AsMemory();
        foreach (long user in _order)
        {
            var pending = cache.GetAsync("m", user, destination);
            if (!pending.IsCompletedSuccessfully || pending.Result.Source != EmbeddingSource.Direct)
            {
                throw new InvalidOperationException("expected a direct hit");
            }
        }

        return _destination[0];
    }

    private static ValueTask Fill(InferenceBatch batch, CancellationToken cancellationToken)
    {
        var users = batch.UserIds.Span;
        for (int i = 0; i < batch.Count; i++)
        {
            batch.GetRow(i).Span.Fill(users[i] * 0.001f); // the same vectors the peers hold
        }

        return ValueTask.CompletedTask;
    }
}
