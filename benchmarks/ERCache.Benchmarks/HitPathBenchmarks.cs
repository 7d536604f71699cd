using System.Collections.Concurrent;
using BenchmarkDotNet.Attributes;
using ERCache.Inference;
using Microsoft.Extensions.Caching.Memory;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace ERCache.Benchmarks;

/// <summary>
/// One direct-tier hit of a 256-dimension vector into a caller buffer, against the peers (<see cref="PeerCaches"/>):
/// the <see cref="ConcurrentDictionary{TKey, TValue}"/> floor (look-up plus copy), BitFaster's ConcurrentLru and
/// ConcurrentTLru, MemoryCache, FusionCache's TryGet and HybridCache's GetOrCreateAsync (float[] and an immutable
/// wrapper), each plus the copy. Each invocation reads 1,024 users drawn at random from the whole population: the same
/// ones every time (<see cref="UserDraw.Fixed"/>, whose rows stay in the CPU's caches) or the next of 512 draws
/// (<see cref="UserDraw.Rotating"/>, whose rows at 1,000,000 entries come from memory).
/// </summary>
[MemoryDiagnoser]
public class HitPathBenchmarks
{
    private const int Dimensions = PeerCaches.Dimensions;
    private const int Reads = 1024;
    private readonly float[] _destination = new float[Dimensions];
    private UserSets<long> _users = null!;
    private UserSets<string> _keys = null!;
    private UserSets<string> _immutableKeys = null!;
    private PeerCaches _peers = null!;
    private EmbeddingCache _cache = null!;
    private EmbeddingCache _cacheFloat16 = null!;
    private EmbeddingCache _cacheInt8 = null!;
    private EmbeddingCache _cacheSieve = null!;
    private EmbeddingCache _cacheWithoutHugePages = null!;
    private EmbeddingModel _model = null!;
    private MeterProvider? _openTelemetry;

    [ParamsSource(nameof(EntryCounts))]
    public int Entries { get; set; }

    /// <summary>10,000 and 1,000,000 entries; <c>ERCACHE_BENCH_ENTRIES</c> (comma-separated) overrides them, for CI's
    /// smoke run.</summary>
    public static IEnumerable<int> EntryCounts => PeerCaches.EntryCounts();

    [Params(UserDraw.Fixed, UserDraw.Rotating)]
    public UserDraw Draw { get; set; }

    // Each benchmark process fills only the store it measures (filling all of them at 1,000,000 entries is most of a run).
    [GlobalSetup(Target = nameof(ConcurrentDictionary))]
    public void SetupDictionary() => Setup(PeerCaches.Store.Dictionary);

    [GlobalSetup(Target = nameof(BitFasterConcurrentLru))]
    public void SetupLru() => Setup(PeerCaches.Store.Lru);

    [GlobalSetup(Target = nameof(BitFasterConcurrentTLru))]
    public void SetupTLru() => Setup(PeerCaches.Store.TLru);

    [GlobalSetup(Target = nameof(MemoryCache))]
    public void SetupMemoryCache() => Setup(PeerCaches.Store.MemoryCache);

    [GlobalSetup(Target = nameof(FusionCacheTryGet))]
    public void SetupFusion() => Setup(PeerCaches.Store.Fusion);

    [GlobalSetup(Target = nameof(HybridCacheFloatArray))]
    public void SetupHybrid() => Setup(PeerCaches.Store.Hybrid);

    [GlobalSetup(Target = nameof(HybridCacheImmutable))]
    public void SetupHybridImmutable() => Setup(PeerCaches.Store.HybridImmutable);

    [GlobalSetup(Targets = [nameof(ERCacheFloat32), nameof(ERCacheFloat32Handle)])]
    public void SetupFloat32() => Setup(PeerCaches.Store.None, StorageFormat.Float32);

    [GlobalSetup(Target = nameof(ERCacheFloat32OpenTelemetry))]
    public void SetupFloat32OpenTelemetry()
    {
        Setup(PeerCaches.Store.None, StorageFormat.Float32);
        _openTelemetry = Sdk.CreateMeterProviderBuilder().AddMeter(Diagnostics.ERCacheDiagnostics.MeterName).AddReader(DiscardingReader()).Build();
    }

    [GlobalSetup(Target = nameof(ERCacheFloat32OpenTelemetryWithoutAges))]
    public void SetupFloat32OpenTelemetryWithoutAges()
    {
        Setup(PeerCaches.Store.None, StorageFormat.Float32);
        _openTelemetry = Sdk.CreateMeterProviderBuilder().AddMeter(Diagnostics.ERCacheDiagnostics.MeterName)
            .AddView(Diagnostics.ERCacheDiagnostics.VectorAge, MetricStreamConfiguration.Drop).AddReader(DiscardingReader()).Build();
    }

    [GlobalSetup(Target = nameof(ERCacheFloat32Sieve))]
    public void SetupFloat32Sieve()
    {
        Setup(PeerCaches.Store.None);
        _cacheSieve = CreateCache(StorageFormat.Float32, Entries, EvictionStrategy.Sieve);
    }

    [GlobalSetup(Target = nameof(ERCacheFloat32WithoutHugePages))]
    public void SetupFloat32WithoutHugePages()
    {
        Setup(PeerCaches.Store.None);
        _cacheWithoutHugePages = CreateCache(StorageFormat.Float32, Entries, hugePages: false);
    }

    [GlobalSetup(Target = nameof(ERCacheFloat16))]
    public void SetupFloat16() => Setup(PeerCaches.Store.None, StorageFormat.Float16);

    [GlobalSetup(Target = nameof(ERCacheInt8))]
    public void SetupInt8() => Setup(PeerCaches.Store.None, StorageFormat.Int8);

    private void Setup(PeerCaches.Store stores, StorageFormat? format = null)
    {
        _users = Draw.Sets(Entries, Reads, seed: 42);
        if (stores is PeerCaches.Store.Fusion or PeerCaches.Store.Hybrid or PeerCaches.Store.HybridImmutable)
        {
            // Only the string-keyed peers need them: a rotating draw's keys are about a million strings.
            _keys = _users.Select(PeerCaches.Key);
            _immutableKeys = _users.Select(PeerCaches.ImmutableKey);
        }
        _peers = new PeerCaches(Entries);
        _peers.Populate(Entries, stores);
        if (format is { } f)
        {
            var cache = CreateCache(f, Entries);
            switch (f)
            {
                case StorageFormat.Float16:
                    _cacheFloat16 = cache;
                    break;
                case StorageFormat.Int8:
                    _cacheInt8 = cache;
                    break;
                default:
                    _cache = cache;
                    _model = cache.GetModel("m");
                    break;
            }
        }
    }

    private static EmbeddingCache CreateCache(StorageFormat format, int users, EvictionStrategy eviction = EvictionStrategy.Lru, bool hugePages = true)
    {
        var cache = PeerCaches.CreateERCache(users, format, eviction: eviction, hugePages: hugePages);
        PeerCaches.Populate(cache, users);
        return cache;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _openTelemetry?.Dispose();
        _cache?.Dispose();
        _cacheFloat16?.Dispose();
        _cacheInt8?.Dispose();
        _cacheSieve?.Dispose();
        _cacheWithoutHugePages?.Dispose();
        _peers.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Reads)]
    public float ConcurrentDictionary()
    {
        foreach (long user in _users.Next())
        {
            if (_peers.Dictionary.TryGetValue(user, out var vector))
            {
                vector.CopyTo(_destination, 0);
            }
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Reads)]
    public float BitFasterConcurrentLru()
    {
        foreach (long user in _users.Next())
        {
            if (_peers.Lru.TryGet(user, out var vector))
            {
                vector.CopyTo(_destination, 0);
            }
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Reads)]
    public float BitFasterConcurrentTLru()
    {
        foreach (long user in _users.Next())
        {
            if (_peers.TLru.TryGet(user, out var vector))
            {
                vector.CopyTo(_destination, 0);
            }
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Reads)]
    public float MemoryCache()
    {
        foreach (long user in _users.Next())
        {
            if (_peers.MemoryCache.TryGetValue(user, out float[]? vector))
            {
                vector!.CopyTo(_destination, 0);
            }
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Reads)]
    public float FusionCacheTryGet()
    {
        foreach (string key in _keys.Next())
        {
            var maybe = _peers.Fusion.TryGet<float[]>(key);
            if (maybe.HasValue)
            {
                maybe.Value.CopyTo(_destination, 0);
            }
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Reads)]
    public float HybridCacheFloatArray()
    {
        foreach (string key in _keys.Next())
        {
            var pending = _peers.Hybrid.GetOrCreateAsync(key, static _ => ValueTask.FromResult(new float[Dimensions]));
            Completed(pending).CopyTo(_destination, 0); // an L1 hit completes synchronously
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Reads)]
    public float HybridCacheImmutable()
    {
        foreach (string key in _immutableKeys.Next())
        {
            var pending = _peers.Hybrid.GetOrCreateAsync(key, static _ => ValueTask.FromResult(new PeerCaches.ImmutableVector(new float[Dimensions])));
            Completed(pending).Values.CopyTo(_destination, 0);
        }

        return _destination[0];
    }

    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheFloat32() => Hits(_cache);

    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheFloat32Handle()
    {
        var destination = _destination.AsMemory();
        foreach (long user in _users.Next())
        {
            var pending = _model.GetAsync(user, destination);
            if (!pending.IsCompletedSuccessfully || pending.Result.Source != EmbeddingSource.Direct)
            {
                throw new InvalidOperationException("expected a direct hit");
            }
        }

        return _destination[0];
    }

    /// <summary>The same hit while the OpenTelemetry SDK collects the cache's meter, as in a service that exports its
    /// metrics (aggregated in process; an export every hour, never reached in a run).</summary>
    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheFloat32OpenTelemetry() => Hits(_cache);

    /// <summary>The same, with the one per-hit instrument (the age histogram) dropped by a view.</summary>
    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheFloat32OpenTelemetryWithoutAges() => Hits(_cache);

    /// <summary>The same hit with Sieve eviction: a hit sets the entry's visited bit instead of queueing its promotion
    /// in the LRU order, as BitFaster's ConcurrentLru and ConcurrentTLru mark an item accessed.</summary>
    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheFloat32Sieve() => Hits(_cacheSieve);

    /// <summary>The same hit on a tier built with <c>HugePages</c> off: what huge pages save a read from memory (the
    /// kernel's mode permitting; docs/benchmarks.md gives it with each run).</summary>
    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheFloat32WithoutHugePages() => Hits(_cacheWithoutHugePages);

    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheFloat16() => Hits(_cacheFloat16);

    [Benchmark(OperationsPerInvoke = Reads)]
    public float ERCacheInt8() => Hits(_cacheInt8);

    private static PeriodicExportingMetricReader DiscardingReader() =>
        new(new DiscardingExporter(), exportIntervalMilliseconds: 3_600_000);

    private static T Completed<T>(ValueTask<T> pending) =>
        pending.IsCompletedSuccessfully ? pending.Result : throw new InvalidOperationException("expected an L1 hit");

    private float Hits(EmbeddingCache cache)
    {
        var destination = _destination.AsMemory();
        foreach (long user in _users.Next())
        {
            var pending = cache.GetAsync("m", user, destination);
            if (!pending.IsCompletedSuccessfully || pending.Result.Source != EmbeddingSource.Direct)
            {
                throw new InvalidOperationException("expected a direct hit");
            }
        }

        return _destination[0];
    }
}
