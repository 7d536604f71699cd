namespace ERCache;

/// <summary>Why inference did not produce a vector for a user. Reported on
/// <see cref="EmbeddingResult.FailureCause"/> for <see cref="EmbeddingSource.Failover"/> and
/// <see cref="EmbeddingSource.Fallback"/> results, and as the <c>cause</c> tag of the
/// <c>ercache.inference.failures</c> counter.</summary>
public enum InferenceFailureCause : byte
{
    /// <summary>Inference did not fail (a direct hit or a fresh vector).</summary>
    None = 0,

    /// <summary>The delegate threw, or marked the user as failed with <see cref="ERCache.Inference.InferenceBatch.Fail(int)"/>.</summary>
    Error = 1,

    /// <summary>The delegate did not finish within the model's <c>Inference:Timeout</c>.</summary>
    Timeout = 2,

    /// <summary>The delegate returned a vector of the wrong length, or one with a NaN or infinite value.</summary>
    InvalidVector = 3,

    /// <summary>Inference was not attempted because the model is overloaded.</summary>
    Overload = 4,

    /// <summary>Inference was not attempted because the model's circuit breaker is open.</summary>
    CircuitOpen = 5,
}
