namespace ERCache.Inference;

/// <summary>
/// Background work that fills whole delegate calls on slots nobody needs: a rollout's warming of the next version. The
/// scheduler asks for a batch only when no miss is queued, a slot is free and fewer than <see cref="MaxConcurrency"/>
/// of the source's calls run; the users belong to <see cref="Target"/> (the next version's scheduler), which names the
/// batch's version, takes its rows and holds the users in its pending map while they run.
/// </summary>
internal interface IBackgroundBatchSource
{
    /// <summary>Most of the source's calls at once.</summary>
    int MaxConcurrency { get; }

    /// <summary>The scheduler whose users these are.</summary>
    InferenceScheduler Target { get; }

    /// <summary>The next users to infer, at most <paramref name="maxUsers"/>, each already pending in
    /// <see cref="Target"/>; empty when there is nothing to do now.</summary>
    PendingInference[] Take(int maxUsers);
}
