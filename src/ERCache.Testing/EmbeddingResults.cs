namespace ERCache.Testing;

/// <summary>
/// The results a cache returns, by name, for a service's own tests: a fake <see cref="IEmbeddingCache"/> or
/// <see cref="EmbeddingModel"/> answers with these, and the service's handling of each source can be tested without a
/// cache.
/// </summary>
public static class EmbeddingResults
{
    /// <summary>A direct hit: the cached vector, <paramref name="age"/> old, no inference ran.</summary>
    public static EmbeddingResult Direct(TimeSpan age, string modelVersion = "v1") =>
        EmbeddingResult.Create(EmbeddingSource.Direct, age, modelVersion, InferenceFailureCause.None, hasVector: true);

    /// <summary>A regional hit: another host's vector, <paramref name="age"/> old.</summary>
    public static EmbeddingResult Regional(TimeSpan age, string modelVersion = "v1") =>
        EmbeddingResult.Create(EmbeddingSource.Regional, age, modelVersion, InferenceFailureCause.None, hasVector: true);

    /// <summary>A vector inferred for this request.</summary>
    public static EmbeddingResult Fresh(string modelVersion = "v1") =>
        EmbeddingResult.Create(EmbeddingSource.Fresh, TimeSpan.Zero, modelVersion, InferenceFailureCause.None, hasVector: true);

    /// <summary>Inference failed for <paramref name="cause"/>; a failover vector <paramref name="age"/> old was served.</summary>
    public static EmbeddingResult Failover(TimeSpan age, InferenceFailureCause cause = InferenceFailureCause.Timeout, string modelVersion = "v1") =>
        EmbeddingResult.Create(EmbeddingSource.Failover, age, modelVersion, CheckFailure(cause), hasVector: true);

    /// <summary>Inference failed for <paramref name="cause"/> and no vector was cached: the model's default vector when
    /// <paramref name="hasDefaultVector"/>, otherwise zeros and <see cref="EmbeddingResult.HasVector"/> false.</summary>
    public static EmbeddingResult Fallback(InferenceFailureCause cause = InferenceFailureCause.Timeout, bool hasDefaultVector = false, string modelVersion = "v1") =>
        EmbeddingResult.Create(EmbeddingSource.Fallback, TimeSpan.Zero, modelVersion, CheckFailure(cause), hasDefaultVector);

    private static InferenceFailureCause CheckFailure(InferenceFailureCause cause) =>
        cause == InferenceFailureCause.None
            ? throw new ArgumentOutOfRangeException(nameof(cause), cause, "A failover or fallback result has a failure cause.")
            : cause;
}
