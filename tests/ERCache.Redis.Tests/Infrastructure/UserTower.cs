using ERCache.Inference;

namespace ERCache.Redis.Tests.Infrastructure;

/// <summary>A tower whose vector for user <c>u</c> is <c>[u + 0, u + 1, ...]</c> (exact for ids below 2^24), plus 0.25 for
/// any version but <c>v1</c>, so any served vector tells whose it is and which version computed it; counts the users
/// it computed, and can be made to fail.</summary>
internal sealed class UserTower : IEmbeddingInference
{
    private int _users;

    public bool Failing { get; set; }

    public int Users => Volatile.Read(ref _users);

    public static bool BelongsTo(ReadOnlySpan<float> row, long user)
    {
        float offset = row[0] - user;
        if (offset is not (0 or 0.25f))
        {
            return false;
        }

        for (int j = 0; j < row.Length; j++)
        {
            if (row[j] != user + j + offset)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Whether a vector of <see cref="BelongsTo"/> was computed for version <c>v1</c>.</summary>
    public static bool IsVersion1(ReadOnlySpan<float> row, long user) => row[0] == user;

    public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
    {
        if (Failing)
        {
            throw new InvalidOperationException("the tower is down");
        }

        Interlocked.Add(ref _users, batch.Count);
        var users = batch.UserIds.Span;
        float offset = batch.Version == "v1" ? 0 : 0.25f;
        for (int i = 0; i < batch.Count; i++)
        {
            var row = batch.GetRow(i).Span;
            for (int j = 0; j < row.Length; j++)
            {
                row[j] = users[i] + j + offset;
            }
        }

        return ValueTask.CompletedTask;
    }
}
