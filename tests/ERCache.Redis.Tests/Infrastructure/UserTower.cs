using ERCache.Inference;

namespace ERCache.Redis.Tests.Infrastructure;

/// <summary>A tower whose vector for user <c>u</c> is <c>[u + 0, u + 1, ...]</c> (exact for ids below 2^24), so any
/// served vector tells whose it is; counts the users it computed, and can be made to fail.</summary>
internal sealed class UserTower : IEmbeddingInference
{
    private int _users;

    public bool Failing { get; set; }

    public int Users => Volatile.Read(ref _users);

    public static bool BelongsTo(ReadOnlySpan<float> row, long user)
    {
        for (int j = 0; j < row.Length; j++)
        {
            if (row[j] != user + j)
            {
                return false;
            }
        }

        return true;
    }

    public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
    {
        if (Failing)
        {
            throw new InvalidOperationException("the tower is down");
        }

        Interlocked.Add(ref _users, batch.Count);
        var users = batch.UserIds.Span;
        for (int i = 0; i < batch.Count; i++)
        {
            var row = batch.GetRow(i).Span;
            for (int j = 0; j < row.Length; j++)
            {
                row[j] = users[i] + j;
            }
        }

        return ValueTask.CompletedTask;
    }
}
