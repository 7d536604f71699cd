using ERCache.Storage;

namespace ERCache.Inference;

/// <summary>
/// Decides why inference produced no vector for a user. Each origin of a failure has one method: one row of a call that
/// completed, a completed call as a whole (for the breaker), a user the queue would not take, and a caller whose
/// deadline passed first; how a delegate call ended is classified by <see cref="Internal.ExceptionCause"/>, which the
/// regional tier shares.
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

    /// <summary>
    /// A completed call as a whole, for the circuit breaker: <see cref="InferenceFailureCause.InvalidVector"/> when it
    /// produced no usable row and at least one invalid one (every row of the wrong length, not finite or never written,
    /// bar rows the delegate failed itself), else <see cref="InferenceFailureCause.None"/>. A tower that answers with
    /// nothing usable is as broken as one that throws; one that fails some users with <see cref="InferenceBatch.Fail"/>
    /// is working. Stops at the first usable row, so a healthy call costs one row's check.
    /// </summary>
    public static InferenceFailureCause OfCall(InferenceBatch batch)
    {
        bool invalid = false;
        for (int i = 0; i < batch.Count; i++)
        {
            switch (OfRow(batch.StatusOf(i), batch.Row(i)))
            {
                case InferenceFailureCause.None:
                    return InferenceFailureCause.None;
                case InferenceFailureCause.InvalidVector:
                    invalid = true;
                    break;
            }
        }

        return invalid ? InferenceFailureCause.InvalidVector : InferenceFailureCause.None;
    }

    /// <summary>A user refused by the queue (full), or dropped from it because every waiter's deadline had passed.</summary>
    public static InferenceFailureCause OfShed() => InferenceFailureCause.Overload;

    /// <summary>A caller's deadline passed before the user's inference finished: a timeout when the delegate had been
    /// called for the user, an overload when the user was still waiting for a free call.</summary>
    public static InferenceFailureCause OfUnfinished(bool started) =>
        started ? InferenceFailureCause.Timeout : InferenceFailureCause.Overload;
}
