namespace ERCache;

/// <summary>The two tiers of a model.</summary>
public enum TierKind
{
    /// <summary>Served without inference while younger than the direct TTL.</summary>
    Direct,

    /// <summary>Served only when inference fails, while younger than the failover TTL.</summary>
    Failover,
}
