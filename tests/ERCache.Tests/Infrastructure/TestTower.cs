using ERCache.Inference;

namespace ERCache.Tests.Infrastructure;

/// <summary>
/// A scriptable user tower. User <c>u</c>'s vector is <c>[u, Generation, u + 2, u + 3, ...]</c> (exact in float for
/// ids below 2^24), so a test can tell whose vector it got and which inference produced it.
/// </summary>
internal sealed class TestTower : IEmbeddingInference
{
    private readonly Lock _lock = new();
    private readonly List<long[]> _calls = [];

    /// <summary>Bumped by tests to tell vectors of different inferences apart (0..999).</summary>
    public int Generation { get; set; }

    /// <summary>When set, decides per user what happens; default writes the expected row.</summary>
    public Func<long, InferenceBatch, int, CancellationToken, ValueTask>? PerUser { get; set; }

    /// <summary>When set, every call waits for it before producing vectors (for tests that hold inference in flight).</summary>
    public Task? Gate { get; set; }

    /// <summary>When set, replaces the whole call.</summary>
    public Func<InferenceBatch, CancellationToken, ValueTask>? Whole { get; set; }

    public IReadOnlyList<long[]> Calls
    {
        get
        {
            lock (_lock)
            {
                return [.. _calls];
            }
        }
    }

    public int CallCount => Calls.Count;

    public static float Expected(long user, int j, int generation) => j == 1 ? generation : user + j;

    public static void Fill(Span<float> row, long user, int generation)
    {
        for (int j = 0; j < row.Length; j++)
        {
            row[j] = Expected(user, j, generation);
        }
    }

    /// <summary>True when <paramref name="row"/> is exactly user <paramref name="user"/>'s vector of some generation.</summary>
    public static bool BelongsTo(ReadOnlySpan<float> row, long user)
    {
        for (int j = 0; j < row.Length; j++)
        {
            if (j != 1 && row[j] != user + j)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The generation a vector was computed at.</summary>
    public static int GenerationOf(ReadOnlySpan<float> row) => (int)row[1];

    public async ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _calls.Add(batch.UserIds.ToArray());
        }

        if (Gate is { } gate)
        {
            await gate.ConfigureAwait(false); // a tower's continuation must not wait for the test's synchronization context
        }

        if (Whole is { } whole)
        {
            await whole(batch, cancellationToken).ConfigureAwait(false);
            return;
        }

        for (int i = 0; i < batch.Count; i++)
        {
            long user = batch.UserIds.Span[i];
            if (PerUser is { } perUser)
            {
                await perUser(user, batch, i, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                Fill(batch.GetRow(i).Span, user, Generation);
            }
        }
    }
}
