namespace ERCache;

/// <summary>
/// A model's next version, warmed before it becomes current (<c>ERCache:Models:&lt;name&gt;:Rollout</c>). While
/// <see cref="NextVersion"/> is set, the cache infers that version's vectors for the users resident in the current
/// version's tiers, the most recently inferred first, on spare capacity only: a warming call starts only when no miss is
/// queued and a delegate slot is free, and at most <see cref="MaxConcurrency"/> of them run at once, so a burst of
/// requests always finds slots. The vectors go to the next version's own tiers (and the regional store): they are never
/// served as the current version. When <c>Version</c> is then changed to <see cref="NextVersion"/>, the model starts
/// with those tiers, and the old version's are released. The inference receives these batches with
/// <see cref="Inference.InferenceBatch.Version"/> set to the next version.
/// </summary>
public sealed class RolloutOptions
{
    /// <summary>The version to warm; must differ from the model's <c>Version</c>. Default <see langword="null"/>: no
    /// rollout.</summary>
    public string? NextVersion { get; set; }

    /// <summary>When warming starts (wall clock); default <see langword="null"/>: at once.</summary>
    public DateTimeOffset? Start { get; set; }

    /// <summary>
    /// When users start being served the next version, for services whose ranking model reads both versions (each result's
    /// <see cref="EmbeddingResult.ModelVersion"/> says which one it is): from then on, users switch in the order of a hash
    /// of their id, evenly over <see cref="SwitchOver"/>, so the misses of the switch are spread out instead of arriving at
    /// once. A switched user is served from the next version's tiers and inference, never from the current version's.
    /// Once every user has switched, set <c>Version</c> to <see cref="NextVersion"/> (its tiers are kept). Default
    /// <see langword="null"/>: users switch only when <c>Version</c> changes.
    /// </summary>
    public DateTimeOffset? SwitchAt { get; set; }

    /// <summary>How long the gradual switch from <see cref="SwitchAt"/> takes, at most one day. Default zero: every user
    /// at <see cref="SwitchAt"/>.</summary>
    public TimeSpan SwitchOver { get; set; }

    /// <summary>Most warming calls in flight at once, at most <c>Inference:MaxConcurrency</c>. Default: half of
    /// <c>Inference:MaxConcurrency</c>, at least one; the other slots stay free for requests.</summary>
    public int? MaxConcurrency { get; set; }

    /// <summary>Most users per warming call, at most <c>Inference:MaxBatchSize</c>. Default <c>Inference:MaxBatchSize</c>.
    /// A call takes fewer when the tower's measured time per user says that many would hold the slot for more than a
    /// quarter of <c>Inference:Timeout</c>: a request that arrives just after a warming call started still meets its
    /// deadline.</summary>
    public int? BatchSize { get; set; }
}
