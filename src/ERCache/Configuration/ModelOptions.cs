namespace ERCache;

/// <summary>The settings of one model (<c>ERCache:Models:&lt;name&gt;</c>).</summary>
public sealed class ModelOptions
{
    /// <summary>Length of the model's embedding vectors, 1..16384. Required.</summary>
    public int Dimensions { get; set; }

    /// <summary>The model version. Changing it makes every cached vector of the model invisible
    /// (the model's tiers are dropped). Default <c>"1"</c>.</summary>
    public string Version { get; set; } = "1";

    /// <summary>How inference is called for the model.</summary>
    public InferenceOptions Inference { get; set; } = new();

    /// <summary>The direct tier: served without inference while younger than its TTL.</summary>
    public TierOptions Direct { get; set; } = new() { Eviction = EvictionStrategy.Lru };

    /// <summary>The failover tier: served only when inference fails, while younger than its (longer) TTL.</summary>
    public TierOptions Failover { get; set; } = new() { Eviction = EvictionStrategy.Fifo };

    /// <summary>How the model uses the regional tier, when one is registered.</summary>
    public ModelRegionalOptions Regional { get; set; } = new();

    /// <summary>Background work on spare capacity: drift sampling and refresh ahead (both off by default).</summary>
    public FreshnessOptions Freshness { get; set; } = new();

    /// <summary>The next version, warmed on spare capacity before <see cref="Version"/> changes to it.</summary>
    public RolloutOptions Rollout { get; set; } = new();

    /// <summary>Optional vector written to the destination on a fallback (length must equal
    /// <see cref="Dimensions"/>, every value finite). When absent, a fallback zeroes the destination.</summary>
    public float[]? DefaultVector { get; set; }
}
