namespace ERCache.Tiers;

/// <summary>What <see cref="EmbeddingTier.Restore"/> did with an entry of a snapshot.</summary>
internal enum RestoreResult
{
    /// <summary>Written.</summary>
    Restored,

    /// <summary>Not written: the tier holds the user's vector written at or after the entry, or the user was removed
    /// since the load began.</summary>
    Kept,

    /// <summary>Not written: the tier is full of entries newer than it (none has expired), and a restore does not evict.</summary>
    TierFull,
}
