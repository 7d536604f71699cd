using BenchmarkDotNet.Attributes;
using ERCache.Diagnostics;
using ERCache.Tiers;
using Microsoft.Extensions.Caching.Memory;

namespace ERCache.Benchmarks;

/// <summary>
/// Inserting a new user into a full tier of 10,000 entries of 256 dimensions, so every write evicts: each slab
/// strategy in each format, ERCache's MemoryCache-backed tier, and the peer, <c>MemoryCache.Set</c> of a fresh
/// <c>float[]</c> copy into a size-limited <see cref="MemoryCache"/> (which compacts in the background when full).
/// </summary>
[MemoryDiagnoser]
public class WritePathBenchmarks
{
    private const int Dimensions = 256;
    private const int Entries = 10_000;
    private const int Writes = 1024;
    private readonly float[] _vector = Enumerable.Range(0, Dimensions).Select(i => MathF.Sin(i)).ToArray();
    private ERCacheMetrics _metrics = null!;
    private EmbeddingTier _lru = null!;
    private EmbeddingTier _fifo = null!;
    private EmbeddingTier _sieve = null!;
    private EmbeddingTier _memoryCacheTier = null!;
    private MemoryCache _memoryCache = null!;
    private long _nextUser;

    [Params("Float32", "Float16", "Int8")]
    public string Format { get; set; } = "Float32";

    [GlobalSetup]
    public void Setup()
    {
        _metrics = new ERCacheMetrics(null);
        _lru = Full("Lru");
        _fifo = Full("Fifo");
        _sieve = Full("Sieve");
        _memoryCacheTier = Full("MemoryCache");
        _memoryCache = new MemoryCache(new MemoryCacheOptions { SizeLimit = Entries });
        for (long u = 0; u < Entries; u++)
        {
            using var entry = _memoryCache.CreateEntry(u);
            entry.Size = 1;
            entry.Value = _vector.ToArray();
        }

        _nextUser = Entries;
    }

    private EmbeddingTier Full(string eviction) => FullTier.Create(Entries, eviction, Format, _vector, _metrics);

    [GlobalCleanup]
    public void Cleanup()
    {
        _memoryCache.Dispose();
        _metrics.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Writes)]
    public int MemoryCacheSet()
    {
        for (int i = 0; i < Writes; i++)
        {
            using var entry = _memoryCache.CreateEntry(_nextUser++);
            entry.Size = 1;
            entry.Value = _vector.ToArray(); // a cache of float[] needs its own copy per entry
        }

        return _memoryCache.Count;
    }

    [Benchmark(OperationsPerInvoke = Writes)]
    public int Lru() => Insert(_lru);

    [Benchmark(OperationsPerInvoke = Writes)]
    public int Fifo() => Insert(_fifo);

    [Benchmark(OperationsPerInvoke = Writes)]
    public int Sieve() => Insert(_sieve);

    [Benchmark(OperationsPerInvoke = Writes)]
    public int MemoryCacheTier() => Insert(_memoryCacheTier);

    private int Insert(EmbeddingTier tier)
    {
        for (int i = 0; i < Writes; i++)
        {
            tier.Write(_nextUser++, _vector, writtenAt: 0);
        }

        return tier.Count;
    }
}
