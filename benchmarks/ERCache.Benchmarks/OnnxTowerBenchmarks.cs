using BenchmarkDotNet.Attributes;
using ERCache.OnnxRuntime;
using ERCache.Samples.RankingService;

namespace ERCache.Benchmarks;

/// <summary>
/// CPU time of the sample's cvr user tower (64 features → 256 → 256 → 64) per batch, on ONNX Runtime (one session
/// run per batch, one intra-op thread) and as the C# twin with the same weights (one user at a time). Divide by
/// <see cref="BatchSize"/> for the cost per user: batching across callers is what lets a run amortise its fixed cost.
/// </summary>
[MemoryDiagnoser]
public class OnnxTowerBenchmarks
{
    private OnnxEmbeddingInference _onnx = null!;
    private UserTower _reference = null!;
    private long[] _users = null!;
    private float[] _embeddings = null!;

    [Params(1, 8, 64, 256)]
    public int BatchSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "models", "cvr_user_tower.onnx");
        _onnx = new OnnxEmbeddingInference("cvr", 64, new OnnxModelOptions { Path = path }, UserTower.Featurize);
        _reference = TowerRegistry.CreateTower("cvr", 64, seed: 2, onnx: true);
        _users = Enumerable.Range(1, BatchSize).Select(u => (long)u * 7919).ToArray();
        _embeddings = new float[BatchSize * 64];
    }

    [GlobalCleanup]
    public void Cleanup() => _onnx.Dispose();

    [Benchmark(Baseline = true, Description = "OnnxRuntime batch")]
    public void OnnxRun() => _onnx.Run(_users, _embeddings);

    [Benchmark(Description = "C# twin, user by user")]
    public void CSharpTower()
    {
        for (int i = 0; i < _users.Length; i++)
        {
            _reference.Compute(_users[i], _embeddings.AsSpan(i * 64, 64));
        }
    }
}
