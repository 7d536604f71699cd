using Microsoft.Extensions.Time.Testing;
using ERCache.Inference;
using ERCache.Testing;

namespace ERCache.Tests.Infrastructure;

/// <summary>Builds a cache with one or more models on a manual clock and the inline dispatcher (unless given another),
/// and a metric collector on its meter.</summary>
internal sealed class CacheFixture : IDisposable
{
    public const string Model = "ctr";

    public CacheFixture(Action<ModelOptions>? configure = null, int dimensions = 4, InferenceDispatcher? dispatcher = null)
        : this(new Dictionary<string, Action<ModelOptions>?> { [Model] = configure }, dimensions, dispatcher)
    {
    }

    public CacheFixture(IReadOnlyDictionary<string, Action<ModelOptions>?> models, int dimensions = 4, InferenceDispatcher? dispatcher = null)
    {
        TestThread.LeaveSynchronizationContext(); // the cache reacts inside each step of the test (see TestThread)
        Options = new ERCacheOptions();
        foreach (var (name, configure) in models)
        {
            var model = DefaultModel(dimensions);
            configure?.Invoke(model);
            Options.Models[name] = model;
            Towers[name] = new TestTower();
        }

        // Inline by default: each delegate call runs inside the request that starts it, so a test's steps happen in the
        // order it writes them; a test about threads passes a real dispatcher (and lives in the soak collection).
        Cache = EmbeddingCache.Create(
            Options, Towers.ToDictionary(t => t.Key, t => (IEmbeddingInference)t.Value),
            new EmbeddingCacheServices { TimeProvider = Clock, Dispatcher = dispatcher ?? InferenceDispatcher.Inline });
        Metrics = new CacheMetrics(Cache.Meter);
    }

    public FakeTimeProvider Clock { get; } = new();

    public ERCacheOptions Options { get; }

    public Dictionary<string, TestTower> Towers { get; } = [];

    public TestTower Tower => Towers[Model];

    public EmbeddingCache Cache { get; }

    public CacheMetrics Metrics { get; }

    public int Dimensions => Cache.GetPolicy(Options.Models.Keys.First()).Dimensions;

    public static ModelOptions DefaultModel(int dimensions) => new()
    {
        Dimensions = dimensions,
        Version = "v1",
        Inference = new InferenceOptions { Timeout = TimeSpan.FromMilliseconds(50), MaxBatchSize = 16, MaxConcurrency = 4 },
        Direct = new TierOptions { Ttl = TimeSpan.FromMinutes(1), Capacity = 1000, Eviction = EvictionStrategy.Lru },
        Failover = new TierOptions { Ttl = TimeSpan.FromHours(1), Capacity = 1000, Eviction = EvictionStrategy.Fifo },
    };

    public async Task<(EmbeddingResult Result, float[] Vector)> GetAsync(long user, string model = Model)
    {
        TestThread.AssertLeft();
        var vector = new float[Cache.GetPolicy(model).Dimensions];
        var result = await Cache.GetAsync(model, user, vector);
        return (result, vector);
    }

    public void Dispose()
    {
        Metrics.Dispose();
        Cache.Dispose();
    }
}
