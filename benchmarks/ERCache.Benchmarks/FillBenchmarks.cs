using System.Collections.Concurrent;
using System.Runtime;
using BenchmarkDotNet.Attributes;
using ERCache.Diagnostics;
using ERCache.Tiers;

namespace ERCache.Benchmarks;

/// <summary>
/// Filling an empty direct tier of 65,536 entries of 256 dimensions (about 68 MB): the writes that first touch fresh
/// memory, which is where huge pages cost something (the kernel zeroes a whole 2 MB page at its first touch, under the
/// tier's write lock) and where they save page faults (one per 2 MB instead of one per 4 KB). The same tier with
/// <c>HugePages</c> off is the baseline; a <c>ConcurrentDictionary</c> of fresh <c>float[]</c> copies is the floor.
/// Every iteration starts from a new tier, after an aggressive collection that returns the last one's memory to the
/// kernel, so every iteration's writes meet fresh pages.
/// </summary>
[MemoryDiagnoser]
public class FillBenchmarks
{
    private const int Dimensions = 256;
    private const int Entries = 65_536;
    private readonly float[] _vector = Enumerable.Range(0, Dimensions).Select(i => MathF.Sin(i)).ToArray();
    private readonly ERCacheMetrics _metrics = new(null);
    private EmbeddingTier? _tier;
    private ConcurrentDictionary<long, float[]>? _dictionary;

    [IterationSetup(Targets = [nameof(WithHugePages), nameof(WithoutHugePages)])]
    public void NewTier()
    {
        ReturnMemory();
        _tier = FullTier.Create(entries: 0, "Lru", "Float32", _vector, _metrics, capacity: Entries, hugePages: CurrentCaseWantsHugePages);
    }

    [IterationSetup(Target = nameof(ConcurrentDictionaryOfCopies))]
    public void NewDictionary()
    {
        ReturnMemory();
        _dictionary = new ConcurrentDictionary<long, float[]>(concurrencyLevel: 1, capacity: Entries);
    }

    /// <summary>Set by the two tier cases before their setup runs (BenchmarkDotNet runs one case per process).</summary>
    private bool CurrentCaseWantsHugePages { get; set; }

    [GlobalSetup(Target = nameof(WithHugePages))]
    public void SetupWithHugePages() => CurrentCaseWantsHugePages = true;

    [GlobalSetup(Target = nameof(WithoutHugePages))]
    public void SetupWithoutHugePages() => CurrentCaseWantsHugePages = false;

    [GlobalCleanup]
    public void Cleanup() => _metrics.Dispose();

    [Benchmark(OperationsPerInvoke = Entries)]
    public int WithHugePages() => Fill(_tier!);

    [Benchmark(Baseline = true, OperationsPerInvoke = Entries)]
    public int WithoutHugePages() => Fill(_tier!);

    [Benchmark(OperationsPerInvoke = Entries)]
    public int ConcurrentDictionaryOfCopies()
    {
        var dictionary = _dictionary!;
        for (long u = 0; u < Entries; u++)
        {
            dictionary[u] = _vector.ToArray();
        }

        return dictionary.Count;
    }

    private static int Fill(EmbeddingTier tier)
    {
        var vector = new float[Dimensions];
        for (long u = 0; u < Entries; u++)
        {
            vector[0] = u;
            tier.Write(u, vector, writtenAt: 0);
        }

        return tier.Count;
    }

    private void ReturnMemory()
    {
        _tier?.Dispose();
        _tier = null;
        _dictionary = null;
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }
}
