using System.Collections.Frozen;
using BenchmarkDotNet.Attributes;
using ERCache.Inference;
using ERCache.Models;

namespace ERCache.Benchmarks;

/// <summary>
/// Finding a model by name, the first step of every call by name: the case-insensitive frozen dictionary the registry
/// used to read on each call (the baseline), against <see cref="ModelDirectory.TryGet"/> given the string instance it
/// resolved before (a caller's literal). One model named <c>m</c> (the other benchmarks') up to thirty with longer names.
/// </summary>
[MemoryDiagnoser]
public class ModelLookupBenchmarks
{
    private EmbeddingCache _cache = null!;
    private FrozenDictionary<string, ModelVersionState> _byName = null!;
    private ModelDirectory _directory = null!;
    private string _key = null!;

    [Params(1, 30)]
    public int Models { get; set; }

    [Params("m", "ads_ctr_user_tower")]
    public string Name { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        string[] names = [.. Enumerable.Range(0, Models - 1).Select(i => $"model_{i}_tower").Append(Name)];
        var options = new ERCacheOptions();
        var inference = new Dictionary<string, IEmbeddingInference>();
        foreach (var name in names)
        {
            options.Models[name] = new ModelOptions
            {
                Dimensions = 8, Direct = new TierOptions { Ttl = TimeSpan.FromMinutes(1), Capacity = 16 }, Failover = new TierOptions { Enabled = false },
            };
            inference[name] = new DelegateInference(PeerCaches.InferInline);
        }

        _cache = EmbeddingCache.Create(options, inference);
        _byName = names.ToFrozenDictionary(n => n, _cache.ResolveState, StringComparer.OrdinalIgnoreCase);
        _directory = new ModelDirectory(_byName);
        _key = new string(Name.AsSpan()); // the caller's instance, not the configuration's
        if (!_directory.TryGet(_key, out _))
        {
            throw new InvalidOperationException("the model was not found");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _cache.Dispose();

    [Benchmark(Baseline = true)]
    public object? CaseInsensitiveDictionary() => _byName.TryGetValue(_key, out var state) ? state : null;

    [Benchmark]
    public object? DirectoryBySameInstance() => _directory.TryGet(_key, out var state) ? state : null;
}
