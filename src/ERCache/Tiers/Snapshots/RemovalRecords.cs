namespace ERCache.Tiers.Snapshots;

/// <summary>What a <see cref="RemovalLog"/> holds: per user the latest removal or push, and the latest clear.</summary>
internal sealed class RemovalRecords
{
    private readonly Dictionary<long, long> _users = [];

    /// <summary>The records of a file that is not a removal log: nothing may be restored.</summary>
    public static RemovalRecords Unreadable => new() { ClearedAt = long.MaxValue, IsUnreadable = true };

    /// <summary>Read from a file that is not a removal log.</summary>
    public bool IsUnreadable { get; private init; }

    /// <summary>When the model was last cleared (Unix ms), or <see cref="long.MinValue"/>.</summary>
    public long ClearedAt { get; private set; } = long.MinValue;

    /// <summary>Users with a record of their own.</summary>
    public int Users => _users.Count;

    public void Add(long userId, long unixMs)
    {
        if (userId == RemovalLog.EveryUser)
        {
            ClearedAt = Math.Max(ClearedAt, unixMs);
        }
        else if (!_users.TryGetValue(userId, out long at) || at < unixMs)
        {
            _users[userId] = unixMs;
        }
    }

    /// <summary>Whether an entry of <paramref name="userId"/> written at <paramref name="writtenAtUnixMs"/> was removed or
    /// superseded afterwards (or at the same millisecond).</summary>
    public bool Covers(long userId, long writtenAtUnixMs) =>
        writtenAtUnixMs <= ClearedAt || (_users.TryGetValue(userId, out long at) && writtenAtUnixMs <= at);

    /// <summary>The records made at or after <paramref name="unixMs"/>: the latest per user, and the latest clear.</summary>
    public List<(long UserId, long UnixMs)> Since(long unixMs)
    {
        var kept = _users.Where(r => r.Value >= unixMs).Select(r => (r.Key, r.Value)).ToList();
        if (ClearedAt >= unixMs)
        {
            kept.Add((RemovalLog.EveryUser, ClearedAt));
        }

        return kept;
    }
}
