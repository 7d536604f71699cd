namespace ERCache;

/// <summary>Where the vector of an <see cref="EmbeddingResult"/> came from.</summary>
public enum EmbeddingSource : byte
{
    /// <summary>No vector: inference failed and the failover tier had nothing young enough.
    /// The destination holds the model's configured default vector, or zeros when none is configured.</summary>
    Fallback = 0,

    /// <summary>A direct-tier hit: the cached vector was younger than the direct TTL and no inference ran.</summary>
    Direct = 1,

    /// <summary>The vector was just computed by the model's inference delegate (age zero).</summary>
    Fresh = 2,

    /// <summary>Inference failed; the vector was served from the failover tier, younger than the failover TTL.</summary>
    Failover = 3,

    /// <summary>A regional-store hit: another host (or this one) computed the vector, younger than the direct TTL, and
    /// no inference ran here. The vector was copied into the local tiers with its original write time.</summary>
    Regional = 4,
}
