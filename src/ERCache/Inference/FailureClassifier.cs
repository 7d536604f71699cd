using ERCache.Storage;

namespace ERCache.Inference;

/// <summary>
/// Decides why inference produced no vector for a user. Each origin of a failure has one method: one row of a call that
/// completed, a user the queue would not take, and a caller whose deadline passed first; the delegate call as a whole is
/// classified by <see cref="Internal.ExceptionCause"/>, which the regional tier shares.
/// </summary>
internal static class FailureClassifier
{
    /// <summary>One row of a call that completed: what the delegate reported for it, then its values.</summary>
    public static InferenceFailureCause OfRow(InferenceBatch.RowStatus status, ReadOnlySpan<float> row) => status switch
    {
        InferenceBatch.RowStatus.Failed => InferenceFailureCause.Error,
        InferenceBatch.RowStatus.WrongLength => InferenceFailureCause.InvalidVector,
        _ => RowKernels.AllFinite(row) ? InferenceFailureCause.None : InferenceFailureCause.InvalidVector, // an unwritten row is NaN
    };

    /// <summary>A user refused by the queue (full), or dropped from it because every waiter's deadline had passed.</summary>
    public static InferenceFailureCause OfShed() => InferenceFailureCause.Overload;

    /// <summary>A caller's deadline passed before the user's inference finished: a timeout when the delegate had been
    /// called for the user, an overload when the user was still waiting for a free call.</summary>
    public static InferenceFailureCause OfUnfinished(bool started) =>
        started ? InferenceFailureCause.Timeout : InferenceFailureCause.Overload;
}
