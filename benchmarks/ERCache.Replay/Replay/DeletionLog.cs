namespace ERCache.Replay.Replay;

/// <summary>Users deleted by the timeline, and requests answered afterwards with a vector written before their
/// deletion (from any tier of any host): what a deletion did not reach.</summary>
internal sealed class DeletionLog(int events)
{
    private readonly Dictionary<long, (long AtMs, int Event)> _deleted = [];

    /// <summary>Per event of the timeline: requests answered with a vector older than the deletion.</summary>
    public long[] StaleServes { get; } = new long[events];

    public void Deleted(long user, long atMs, int eventIndex) => _deleted[user] = (atMs, eventIndex);

    /// <summary>Counts a result served at <paramref name="nowMs"/> whose vector was written at
    /// <c>nowMs - ageMs</c>, when that is before the user's deletion.</summary>
    public void Check(long user, long nowMs, long ageMs, EmbeddingSource source)
    {
        if (_deleted.Count > 0 && source is EmbeddingSource.Direct or EmbeddingSource.Regional or EmbeddingSource.Failover
            && _deleted.TryGetValue(user, out var deletion) && nowMs - ageMs < deletion.AtMs)
        {
            StaleServes[deletion.Event]++;
        }
    }
}
