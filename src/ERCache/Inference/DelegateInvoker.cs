using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;
using ERCache.Internal;

namespace ERCache.Inference;

/// <summary>
/// Calls one model's inference delegate: through the model's circuit breaker, with the hard limit on its token, and
/// classifies how the call ended. Keeps one finished call (its token source and timer) for the next.
/// </summary>
/// <param name="time">The clock of the hard limit.</param>
/// <param name="logger">Receives failures, hard timeouts and breaker changes.</param>
/// <param name="abandonedCallStopped">Called when a call abandoned at its hard limit finally returns: until then it
/// still runs, so it still counts against <c>MaxConcurrency</c>.</param>
internal sealed class DelegateInvoker(TimeProvider time, ILogger logger, Action abandonedCallStopped) : IDisposable
{
    private const int HardTimeoutKind = 0, ErrorKind = 1;
    private readonly LogThrottle _failureLog = new(time, kinds: 2); // a tower failing steadily logs a few lines a minute
    private ModelCircuitBreaker? _breaker;
    private DelegateCall? _spareCall;
    private volatile bool _disposed;

    /// <summary>The breaker's state, or null when the breaker is disabled.</summary>
    public CircuitState? BreakerState => Volatile.Read(ref _breaker)?.State;

    /// <summary>Applies a model's breaker settings: new or changed settings start a fresh breaker; unchanged settings
    /// keep its state across a reload.</summary>
    public void Configure(ModelPolicy policy)
    {
        var settings = policy.CircuitBreaker;
        var current = Volatile.Read(ref _breaker);
        if (!settings.Enabled)
        {
            Volatile.Write(ref _breaker, null);
        }
        else if (current is null || current.Settings != settings)
        {
            string model = policy.Name;
            Volatile.Write(ref _breaker, new ModelCircuitBreaker(settings, time, state => Log.ModelBreakerState(logger, model, state)));
        }
    }

    /// <summary>
    /// Calls the delegate. The breaker counts a call that threw, passed its hard limit, or completed with nothing
    /// usable (<see cref="FailureClassifier.OfCall"/>: a tower returning only invalid vectors is broken too); the last
    /// still completes here, and its rows are refused one by one as invalid. Returns the batch-wide cause (None when
    /// the delegate completed), whether the call was abandoned still running, in which case its buffers are released
    /// only when it finally stops, and when the call ended (a timestamp). A delegate that completes synchronously (with
    /// no breaker or through a closed one) is answered without an async state machine. <paramref name="started"/> is
    /// the caller's clock reading just before.
    /// </summary>
    public ValueTask<(InferenceFailureCause Cause, bool Abandoned, Exception? Failure, long Ended)> InvokeAsync(
        IEmbeddingInference inference, InferenceBatch batch, ModelPolicy policy, long started)
    {
        var call = Interlocked.Exchange(ref _spareCall, null) ?? new DelegateCall(time);
        call.Start(inference, batch, policy, started);
        ValueTask running;
        try
        {
            var breaker = Volatile.Read(ref _breaker);
            running = breaker is null
                ? call.RunAsync(call.Token)
                : breaker.ExecuteAsync(static (c, ct) => c.RunAsync(ct), call, call.Token, static c => c.ProducedNothingUsable);
        }
        catch (Exception ex)
        {
            running = ValueTask.FromException(ex);
        }

        if (running.IsCompletedSuccessfully)
        {
            running.GetAwaiter().GetResult();
            long ended = time.GetTimestamp();
            return new((InferenceFailureCause.None, EndCall(call), null, ended));
        }

        return AwaitCallAsync(running, call);
    }

    private async ValueTask<(InferenceFailureCause Cause, bool Abandoned, Exception? Failure, long Ended)> AwaitCallAsync(ValueTask running, DelegateCall call)
    {
        Exception? failure = null;
        try
        {
            await running.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        long ended = time.GetTimestamp();
        return (ExceptionCause.Of(failure), EndCall(call), failure, ended);
    }

    /// <summary>Logs a failed call. The scheduler calls it once the call's callers are answered: formatting an
    /// exception for a slow sink must not eat their deadline (the first failure would be reported as a timeout).</summary>
    public void LogFailure(ModelPolicy policy, int users, InferenceFailureCause cause, Exception? failure)
    {
        if (cause == InferenceFailureCause.Timeout)
        {
            if (_failureLog.TryEnter(HardTimeoutKind, out long suppressed))
            {
                Log.HardTimeout(logger, policy.Name, users, policy.HardTimeout, suppressed);
            }
        }
        else if (cause == InferenceFailureCause.Error && failure is not null)
        {
            if (_failureLog.TryEnter(ErrorKind, out long suppressed))
            {
                Log.InferenceFailed(logger, policy.Name, users, suppressed, failure);
            }
        }
    }

    /// <summary>
    /// Ends a call: an abandoned one (still running past its hard limit) keeps its buffers until it stops; a finished
    /// one is kept for the next call when it can be reused, else disposed. Returns whether it was abandoned.
    /// </summary>
    private bool EndCall(DelegateCall call)
    {
        if (call.IsRunning)
        {
            call.ReleaseWhenDone(abandonedCallStopped); // keep the buffers and the slot until the delegate really stops
            return true;
        }

        if (_disposed || !call.TryReset() || Interlocked.CompareExchange(ref _spareCall, call, null) is not null)
        {
            call.Dispose(); // at most one spare (concurrent calls beyond it allocate their own), none after disposal
        }

        return false;
    }

    /// <summary>Disposes the spare call (its token source and timer); calls still running dispose their own.</summary>
    public void Dispose()
    {
        _disposed = true;
        Interlocked.Exchange(ref _spareCall, null)?.Dispose();
    }

}
