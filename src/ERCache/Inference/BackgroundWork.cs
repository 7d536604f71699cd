namespace ERCache.Inference;

/// <summary>Inference the scheduler runs on spare capacity, for no waiting caller.</summary>
internal enum BackgroundWork
{
    /// <summary>A request's miss.</summary>
    None,

    /// <summary>Refresh ahead: the fresh vector replaces an entry that is about to expire.</summary>
    Refresh,

    /// <summary>Drift sampling: the fresh vector is compared with the one served, and not cached.</summary>
    DriftSample,

    /// <summary>Rollout warming: the next version's vector, run on the current version's spare slots.</summary>
    Warm,
}
