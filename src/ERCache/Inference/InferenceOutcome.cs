namespace ERCache.Inference;

/// <summary>What inference produced for one user: a validated vector, or why there is none.</summary>
internal readonly record struct InferenceOutcome(InferenceFailureCause Cause, float[]? Vector)
{
    public static readonly Task<InferenceOutcome> Overload = Task.FromResult(new InferenceOutcome(FailureClassifier.OfShed(), null));
}
