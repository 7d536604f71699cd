using System.Numerics.Tensors;
using ERCache.Inference;

namespace ERCache.QuickStart;

/// <summary>
/// A small deterministic user tower: features derived from the user id, a ReLU dense layer, a linear
/// projection to the embedding, L2-normalised. Weights come from a fixed seed, so every run agrees.
/// </summary>
internal sealed class UserTower : IEmbeddingInference
{
    private const int Features = 32;
    private const int Hidden = 64;
    private readonly int _dimensions;
    private readonly float[] _w1; // Hidden rows of Features
    private readonly float[] _b1;
    private readonly float[] _w2; // dimensions rows of Hidden

    public UserTower(int dimensions, int seed)
    {
        _dimensions = dimensions;
        var rng = new Random(seed);
        _w1 = Weights(rng, Hidden * Features, 1 / MathF.Sqrt(Features));
        _b1 = Weights(rng, Hidden, 0.1f);
        _w2 = Weights(rng, dimensions * Hidden, 1 / MathF.Sqrt(Hidden));
    }

    public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
    {
        Span<float> features = stackalloc float[Features];
        Span<float> hidden = stackalloc float[Hidden];
        var users = batch.UserIds.Span;
        for (int i = 0; i < batch.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            FeaturesOf(users[i], features);
            for (int h = 0; h < Hidden; h++)
            {
                hidden[h] = TensorPrimitives.Dot(_w1.AsSpan(h * Features, Features), features) + _b1[h];
            }

            TensorPrimitives.Max(hidden, 0f, hidden); // ReLU
            var row = batch.GetRow(i).Span;
            for (int d = 0; d < _dimensions; d++)
            {
                row[d] = TensorPrimitives.Dot(_w2.AsSpan(d * Hidden, Hidden), hidden);
            }

            float norm = TensorPrimitives.Norm(row);
            TensorPrimitives.Divide(row, norm > 0 ? norm : 1, row);
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Pseudo-features in [-1, 1) from the user id (SplitMix64), standing in for a feature store lookup.</summary>
    private static void FeaturesOf(long userId, Span<float> features)
    {
        ulong state = unchecked((ulong)userId);
        for (int i = 0; i < features.Length; i++)
        {
            state = unchecked(state + 0x9E3779B97F4A7C15UL);
            ulong z = state;
            z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
            z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
            z ^= z >> 31;
            features[i] = ((z >> 40) / (float)(1UL << 24) * 2) - 1;
        }
    }

    private static float[] Weights(Random rng, int count, float scale)
    {
        var w = new float[count];
        for (int i = 0; i < w.Length; i++)
        {
            w[i] = (float)((rng.NextDouble() * 2) - 1) * scale;
        }

        return w;
    }
}
