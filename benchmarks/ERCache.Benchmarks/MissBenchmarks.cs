using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Caching.Memory;
using ZiggyCreatures.Caching.Fusion;

namespace ERCache.Benchmarks;

/// <summary>
/// A single-user miss with an instant, synchronous factory (ERCache: an inline inference), into stores bounded at
/// 10,000 entries that are full, so every miss also evicts: each peer's get-or-add of a new key, plus the copy into the
/// caller's buffer. ERCache runs lean (direct tier only, RunInline) and with default options (failover tier on,
/// inference on the dispatcher). Each invocation misses on 256 new keys.
/// </summary>
[MemoryDiagnoser]
public class MissBenchmarks
{
    private const int Dimensions = PeerCaches.Dimensions;
    private const int Capacity = 10_000;
    private const int Misses = 256;
    private readonly float[] _destination = new float[Dimensions];
    private PeerCaches _peers = null!;
    private EmbeddingCache _lean = null!;
    private EmbeddingCache _defaults = null!;
    private MemoryCacheEntryOptions _memoryOptions = null!;
    private long _next;

    [GlobalSetup]
    public void Setup()
    {
        _peers = new PeerCaches(Capacity);
        _peers.Populate(Capacity);
        _lean = PeerCaches.CreateERCache(Capacity);
        PeerCaches.Populate(_lean, Capacity);
        _defaults = PeerCaches.CreateERCache(Capacity, defaults: true);
        PeerCaches.Populate(_defaults, Capacity);
        _memoryOptions = new MemoryCacheEntryOptions { Size = 1 };
        _next = 1L << 32; // never a key the setup wrote
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _lean.Dispose();
        _defaults.Dispose();
        _peers.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Misses)]
    public float BitFasterConcurrentTLruGetOrAdd()
    {
        for (int i = 0; i < Misses; i++)
        {
            _peers.TLru.GetOrAdd(_next++, PeerCaches.NewVector).CopyTo(_destination, 0);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Misses)]
    public float MemoryCacheGetOrCreate()
    {
        for (int i = 0; i < Misses; i++)
        {
            long user = _next++;
            var vector = _peers.MemoryCache.GetOrCreate(user, entry =>
            {
                entry.Size = 1;
                return PeerCaches.NewVector((long)entry.Key);
            }, _memoryOptions);
            vector!.CopyTo(_destination, 0);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Misses)]
    public float FusionCacheGetOrSet()
    {
        for (int i = 0; i < Misses; i++)
        {
            long user = _next++;
            _peers.Fusion.GetOrSet<float[]>(PeerCaches.Key(user), (_, _) => PeerCaches.NewVector(user)).CopyTo(_destination, 0);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Misses)]
    public float HybridCacheGetOrCreate()
    {
        for (int i = 0; i < Misses; i++)
        {
            long user = _next++;
            _peers.Hybrid.GetOrCreateAsync(PeerCaches.Key(user), user, static (u, _) => ValueTask.FromResult(PeerCaches.NewVector(u)))
                .AsTask().GetAwaiter().GetResult().CopyTo(_destination, 0);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Misses)]
    public float ERCacheLean() => Miss(_lean);

    [Benchmark(OperationsPerInvoke = Misses)]
    public float ERCacheDefaults() => Miss(_defaults);

    private float Miss(EmbeddingCache cache)
    {
        var destination = _destination.AsMemory();
        for (int i = 0; i < Misses; i++)
        {
            var result = cache.GetAsync("m", _next++, destination).AsTask().GetAwaiter().GetResult();
            if (result.Source != EmbeddingSource.Fresh)
            {
                throw new InvalidOperationException($"expected a fresh vector, got {result.Source}");
            }
        }

        return _destination[0];
    }
}
