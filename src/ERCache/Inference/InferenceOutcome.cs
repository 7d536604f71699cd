namespace ERCache.Inference;

/// <summary>What inference produced for one user: a validated vector, or why there is none. A success without a vector
/// (<see cref="DeliveredToCreator"/>) means the row went straight into the creator's buffer, the only waiter.</summary>
internal readonly record struct InferenceOutcome(InferenceFailureCause Cause, float[]? Vector)
{
    /// <summary>Success, the row copied into the creator's buffer (<see cref="PendingInference.TryDeliverToCreator"/>).</summary>
    public static readonly InferenceOutcome DeliveredToCreator = new(InferenceFailureCause.None, null);

    public static readonly Task<InferenceOutcome> Overload = Task.FromResult(new InferenceOutcome(FailureClassifier.OfShed(), null));
}
