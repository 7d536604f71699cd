using ERCache.Storage;
using Polly.CircuitBreaker;

namespace ERCache.Inference;

/// <summary>
/// The one place that decides why inference produced no vector for a user. Each origin of a failure has one method:
/// the delegate call as a whole, one row of a call that completed, a user the queue would not take, and a caller
/// whose deadline passed first.
/// </summary>
internal static class FailureClassifier
{
    /// <summary>A delegate call that ended with <paramref name="exception"/> (<see langword="null"/>: it completed).</summary>
    public static InferenceFailureCause OfCall(Exception? exception) => exception switch
    {
        null => InferenceFailureCause.None,
        BrokenCircuitException => InferenceFailureCause.CircuitOpen, // the breaker refused the call
        TimeoutException => InferenceFailureCause.Timeout,           // the hard limit, or the delegate's own timeout
        _ => InferenceFailureCause.Error,
    };

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
