namespace ERCache;

/// <summary>
/// Local snapshots of the tiers, so a restarted process starts warm (<c>ERCache:Snapshots</c>). When
/// <see cref="Directory"/> is set, every model's tiers are written there when the cache is disposed (a graceful stop),
/// and every <see cref="Interval"/> if set; at start-up the cache loads, in the background, the snapshot of each tier
/// taken for the same model, version, dimensions and format, with each entry's original wall-clock write time
/// (entries older than the tier's TTL are skipped). A truncated, corrupt, foreign or older snapshot is never used: it is
/// skipped with a log line naming why. Requests are served while the load runs (a user inferred meanwhile keeps its newer
/// vector); <see cref="EmbeddingCache.WhenReadyAsync"/>, the hosted start-up of <c>AddERCache()</c> and the health check
/// report when it is done. Read once, when the cache is built.
/// </summary>
public sealed class SnapshotOptions
{
    /// <summary>The directory the snapshots live in (created if missing); one file per model and tier, and per model a
    /// log of the removals, clears and pushes made since its snapshots were written, so that a restart after a crash
    /// does not bring back what they removed or superseded (each such operation appends 16 bytes to it first). Default
    /// <see langword="null"/>: no snapshots. Beside a regional store whose invalidation channel is on, a restart does
    /// not restore the snapshots' rows (the removals and pushes other hosts made while this one was down never reached
    /// it): it reads the values of the snapshots' users from the store instead.</summary>
    public string? Directory { get; set; }

    /// <summary>How often the tiers are also written while running (at least 1 minute), or <see langword="null"/>
    /// (the default) to write them only at a graceful stop.</summary>
    public TimeSpan? Interval { get; set; }

    /// <summary>The longest the start-up load may take; what is loaded by then stays (a snapshot is loaded newest first),
    /// and the cache reports ready.
    /// Default 30 s; at most 10 minutes.</summary>
    public TimeSpan LoadTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The longest writing the snapshots may take at a stop (or each interval); a snapshot not finished by then
    /// is abandoned and the previous one kept. Default 30 s; at most 10 minutes.</summary>
    public TimeSpan WriteTimeout { get; set; } = TimeSpan.FromSeconds(30);
}
