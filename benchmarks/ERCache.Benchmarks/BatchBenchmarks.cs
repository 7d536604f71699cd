using BenchmarkDotNet.Attributes;

namespace ERCache.Benchmarks;

/// <summary>
/// 64 users per call, all hits, 256-float vectors into one caller buffer: ERCache's <c>GetManyAsync</c> against a loop
/// over each peer's per-key API (a batch knows all its keys up front; a per-key API cannot use that). Reported per
/// user. Each invocation serves 16 batches of users drawn at random from the whole population: the same ones every time
/// (<see cref="UserDraw.Fixed"/>) or the next of 512 draws (<see cref="UserDraw.Rotating"/>, whose rows at 1,000,000
/// entries come from memory: what a batch's prefetch is for).
/// </summary>
[MemoryDiagnoser]
public class BatchBenchmarks
{
    private const int Dimensions = PeerCaches.Dimensions;
    private const int BatchSize = 64;
    private const int Batches = 16;
    private readonly float[] _destination = new float[BatchSize * Dimensions];
    private readonly EmbeddingResult[] _results = new EmbeddingResult[BatchSize];
    private UserSets<long[]> _batches = null!;
    private PeerCaches _peers = null!;
    private EmbeddingCache _cache = null!;
    private EmbeddingCache _cacheWithoutHugePages = null!;

    [ParamsSource(nameof(EntryCounts))]
    public int Entries { get; set; }

    /// <summary>10,000 and 1,000,000 entries; <c>ERCACHE_BENCH_ENTRIES</c> (comma-separated) overrides them, for CI's
    /// smoke run.</summary>
    public static IEnumerable<int> EntryCounts => PeerCaches.EntryCounts();

    [Params(UserDraw.Fixed, UserDraw.Rotating)]
    public UserDraw Draw { get; set; }

    [GlobalSetup(Target = nameof(ConcurrentDictionaryLoop))]
    public void SetupDictionary() => Setup(PeerCaches.Store.Dictionary);

    [GlobalSetup(Target = nameof(BitFasterConcurrentTLruLoop))]
    public void SetupTLru() => Setup(PeerCaches.Store.TLru);

    [GlobalSetup(Target = nameof(MemoryCacheLoop))]
    public void SetupMemoryCache() => Setup(PeerCaches.Store.MemoryCache);

    [GlobalSetup(Target = nameof(ERCacheGetMany))]
    public void SetupERCache()
    {
        Setup(PeerCaches.Store.None);
        _cache = PeerCaches.CreateERCache(Entries);
        PeerCaches.Populate(_cache, Entries);
    }

    [GlobalSetup(Target = nameof(ERCacheGetManyWithoutHugePages))]
    public void SetupERCacheWithoutHugePages()
    {
        Setup(PeerCaches.Store.None);
        _cacheWithoutHugePages = PeerCaches.CreateERCache(Entries, hugePages: false);
        PeerCaches.Populate(_cacheWithoutHugePages, Entries);
    }

    private void Setup(PeerCaches.Store stores)
    {
        _batches = Draw.Sets(Entries, Batches * BatchSize, seed: 7).Chunk(BatchSize);
        _peers = new PeerCaches(Entries);
        _peers.Populate(Entries, stores);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _cache?.Dispose();
        _cacheWithoutHugePages?.Dispose();
        _peers.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = BatchSize * Batches)]
    public float ConcurrentDictionaryLoop()
    {
        foreach (var batch in _batches.Next())
        {
            for (int i = 0; i < batch.Length; i++)
            {
                if (_peers.Dictionary.TryGetValue(batch[i], out var vector))
                {
                    vector.CopyTo(_destination.AsSpan(i * Dimensions, Dimensions));
                }
            }
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = BatchSize * Batches)]
    public float BitFasterConcurrentTLruLoop()
    {
        foreach (var batch in _batches.Next())
        {
            for (int i = 0; i < batch.Length; i++)
            {
                if (_peers.TLru.TryGet(batch[i], out var vector))
                {
                    vector.CopyTo(_destination.AsSpan(i * Dimensions, Dimensions));
                }
            }
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = BatchSize * Batches)]
    public float MemoryCacheLoop()
    {
        foreach (var batch in _batches.Next())
        {
            for (int i = 0; i < batch.Length; i++)
            {
                if (_peers.MemoryCache.TryGetValue(batch[i], out object? value))
                {
                    ((float[])value!).CopyTo(_destination.AsSpan(i * Dimensions, Dimensions));
                }
            }
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = BatchSize * Batches)]
    public float ERCacheGetMany() => GetMany(_cache);

    /// <summary>The same batches on a tier built with <c>HugePages</c> off: what huge pages save a batch from memory.</summary>
    [Benchmark(OperationsPerInvoke = BatchSize * Batches)]
    public float ERCacheGetManyWithoutHugePages() => GetMany(_cacheWithoutHugePages);

    private float GetMany(EmbeddingCache cache)
    {
        foreach (var batch in _batches.Next())
        {
            var pending = cache.GetManyAsync("m", batch, _destination, _results);
            if (!pending.IsCompletedSuccessfully)
            {
                throw new InvalidOperationException("expected only hits");
            }
        }

        return _destination[0];
    }
}
