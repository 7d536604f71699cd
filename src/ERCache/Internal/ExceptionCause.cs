using Polly.CircuitBreaker;

namespace ERCache.Internal;

/// <summary>What an exception from a guarded call means, for the inference delegate and the regional store alike.</summary>
internal static class ExceptionCause
{
    /// <summary>The cause of a call that ended with <paramref name="exception"/> (<see cref="InferenceFailureCause.None"/>
    /// for none): the breaker refused it, a time limit passed, or anything else went wrong.</summary>
    public static InferenceFailureCause Of(Exception? exception) => exception switch
    {
        null => InferenceFailureCause.None,
        BrokenCircuitException => InferenceFailureCause.CircuitOpen, // the breaker refused the call
        TimeoutException => InferenceFailureCause.Timeout,           // the hard limit, the store's timeout, or the callee's own
        _ => InferenceFailureCause.Error,
    };
}
