namespace ERCache;

/// <summary>
/// Per-call options of <see cref="IEmbeddingCache.GetAsync(string, long, Memory{float}, EmbeddingRequestOptions, CancellationToken)"/>
/// and <see cref="IEmbeddingCache.GetManyAsync(string, ReadOnlyMemory{long}, Memory{float}, Memory{EmbeddingResult}, EmbeddingRequestOptions, CancellationToken)"/>:
/// stricter than the model's policy for one call, never looser.
/// </summary>
public sealed class EmbeddingRequestOptions
{
    /// <summary>No per-call restriction: the model's policy alone.</summary>
    public static EmbeddingRequestOptions Default { get; } = new();

    /// <summary>The oldest vector this call accepts from the direct tier or the regional store; an older one is treated
    /// as a miss (inference runs, and its result is cached as usual). Only stricter than <c>Direct:Ttl</c> has an
    /// effect. Does not apply to the failover tier, which answers only when inference fails. Must not be negative.</summary>
    public TimeSpan? MaxAge { get; init; }

    /// <summary>Skip the direct tier and the regional store: run inference now (joining one already pending for the
    /// user) and cache its result. On failure the failover tier still answers, unless <see cref="SkipFailover"/>.</summary>
    public bool ForceRefresh { get; init; }

    /// <summary>When inference fails, answer with the fallback instead of the failover tier (for a caller that would
    /// rather have no embedding than an old one).</summary>
    public bool SkipFailover { get; init; }
}
