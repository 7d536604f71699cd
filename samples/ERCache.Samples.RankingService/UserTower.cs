using System.Numerics.Tensors;
using ERCache.Inference;
using ERCache.OnnxRuntime;

namespace ERCache.Samples.RankingService;

/// <summary>
/// A CPU user tower: features derived from the user id, then a multi-layer perceptron (ReLU hidden layers, linear
/// output) with weights from a fixed seed, computed for a whole batch with <see cref="TensorPrimitives"/>. With the
/// default shape (64 features, two hidden layers of 512) one user costs about 330,000 multiply-adds plus the output
/// layer: tens of microseconds on one core, like a small production user tower.
/// </summary>
public sealed class UserTower : IEmbeddingInference
{
    public const int Features = 64;
    public const int Hidden = 512;

    /// <summary>The hidden width of a tower exported to ONNX (a file of about 400 KB).</summary>
    public const int OnnxHidden = 256;

    private readonly float[][] _weights; // per layer: [outputs][inputs], row-major
    private readonly float[][] _biases;
    private long _computeTicks;
    private long _users;

    private OnnxEmbeddingInference? _onnx;

    public UserTower(string model, int dimensions, int seed, int hidden = Hidden)
    {
        Model = model;
        Dimensions = dimensions;
        HiddenWidth = hidden;
        var rng = new Random(seed);
        int[] sizes = [Features, hidden, hidden, dimensions];
        _weights = new float[sizes.Length - 1][];
        _biases = new float[sizes.Length - 1][];
        for (int layer = 0; layer < sizes.Length - 1; layer++)
        {
            int inputs = sizes[layer], outputs = sizes[layer + 1];
            float scale = MathF.Sqrt(2f / inputs); // He initialisation keeps activations in range through the ReLUs
            _weights[layer] = Enumerable.Range(0, inputs * outputs).Select(_ => (float)((rng.NextDouble() * 2) - 1) * scale).ToArray();
            _biases[layer] = Enumerable.Range(0, outputs).Select(_ => (float)(rng.NextDouble() * 0.1)).ToArray();
        }
    }

    public string Model { get; }

    /// <summary>Width of the two hidden layers.</summary>
    public int HiddenWidth { get; }

    /// <summary>Layer <paramref name="layer"/>'s weights, <c>[outputs][inputs]</c> row-major (for the ONNX export).</summary>
    public ReadOnlySpan<float> Weights(int layer) => _weights[layer];

    /// <summary>Layer <paramref name="layer"/>'s biases.</summary>
    public ReadOnlySpan<float> Biases(int layer) => _biases[layer];

    /// <summary>Runs batches on <paramref name="onnx"/> (the same weights exported to ONNX) instead of the C# layers;
    /// <see cref="Compute"/> stays the C# reference.</summary>
    public void RunOn(OnnxEmbeddingInference onnx) => _onnx = onnx;

    /// <summary>The ONNX Runtime session batches run on, or null for the C# layers.</summary>
    public OnnxEmbeddingInference? Onnx => _onnx;

    public int Dimensions { get; }

    /// <summary>CPU time spent computing embeddings (the computing thread's own CPU clock where the OS offers one).</summary>
    public TimeSpan ComputeTime => TimeSpan.FromTicks(Interlocked.Read(ref _computeTicks));

    /// <summary>CPU time spent per user on top of the network's own (the thread spins): a stand-in for a heavier model.</summary>
    public TimeSpan ExtraCpuPerUser { get; set; }

    /// <summary>Users computed so far.</summary>
    public long Users => Interlocked.Read(ref _users);

    public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
    {
        long started = ThreadCpuClock.NowTicks();
        var users = batch.UserIds.Span;
        if (_onnx is { } onnx)
        {
            onnx.Run(users, batch.Destination, cancellationToken); // the whole batch in one ONNX Runtime run
        }
        else
        {
            for (int i = 0; i < batch.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Compute(users[i], batch.GetRow(i).Span);
            }
        }

        if (ExtraCpuPerUser > TimeSpan.Zero)
        {
            Spin(ExtraCpuPerUser * batch.Count, cancellationToken);
        }

        Interlocked.Add(ref _computeTicks, ThreadCpuClock.NowTicks() - started);
        Interlocked.Add(ref _users, batch.Count);
        return ValueTask.CompletedTask;
    }

    /// <summary>Keeps this thread busy for <paramref name="time"/>, checking the token as it goes.</summary>
    private static void Spin(TimeSpan time, CancellationToken cancellationToken)
    {
        long until = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(time.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        while (System.Diagnostics.Stopwatch.GetTimestamp() < until)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Thread.SpinWait(50);
        }
    }

    /// <summary>The embedding of one user (what the cache stores; tests compute expected scores with it).</summary>
    public void Compute(long userId, Span<float> embedding)
    {
        Span<float> a = stackalloc float[Math.Max(HiddenWidth, Features)];
        Span<float> b = stackalloc float[HiddenWidth];
        Featurize(userId, a[..Features]);
        Layer(0, a[..Features], b, relu: true);
        Layer(1, b, a, relu: true);
        Layer(2, a, embedding, relu: false);
    }

    /// <summary>Deterministic pseudo-features of a user: what a feature store would return for the id.</summary>
    public static void Featurize(long userId, Span<float> features)
    {
        ulong state = (ulong)userId;
        for (int i = 0; i < features.Length; i++)
        {
            state += 0x9E3779B97F4A7C15UL; // SplitMix64
            ulong z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            features[i] = (float)((z >> 40) / (double)(1 << 24)) - 0.5f;
        }
    }

    private void Layer(int layer, ReadOnlySpan<float> input, Span<float> output, bool relu)
    {
        var weights = _weights[layer].AsSpan();
        var biases = _biases[layer];
        int inputs = input.Length;
        for (int o = 0; o < output.Length; o++)
        {
            output[o] = TensorPrimitives.Dot(weights.Slice(o * inputs, inputs), input) + biases[o];
        }

        if (relu)
        {
            TensorPrimitives.Max(output, 0f, output);
        }
    }
}

/// <summary>Item embeddings per model: deterministic from (model seed, item id), as an item index would serve them.</summary>
public static class ItemEmbeddings
{
    public static void Fill(int modelSeed, long itemId, Span<float> embedding)
    {
        UserTower.Featurize(itemId ^ ((long)modelSeed << 40), embedding);
    }
}
