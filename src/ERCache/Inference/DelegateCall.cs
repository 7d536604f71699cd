namespace ERCache.Inference;

/// <summary>
/// One delegate call and its hard limit: a token cancelled <c>HardTimeout</c> after the call started. The call's
/// state travels through the breaker as one object rather than a closure and a delegate per call. A call that
/// finished well inside its limit is reset and reused by the next one (its token source and timer with it).
/// </summary>
internal sealed class DelegateCall(TimeProvider time) : IDisposable
{
    private readonly CancellationTokenSource _source = new();
    private ITimer? _timer;
    private IEmbeddingInference _inference = null!;
    private InferenceBatch _batch = null!;
    private ModelPolicy _policy = null!;
    private long _started;
    private Task? _call;

    public CancellationToken Token => _source.Token;

    /// <summary>Whether the delegate was called and has not finished (it is abandoned if we stop waiting).</summary>
    public bool IsRunning => _call is { IsCompleted: false };

    /// <summary>Prepares the call; <paramref name="started"/> is the caller's reading of the clock, taken just before
    /// (one reading per call instead of one here too).</summary>
    public void Start(IEmbeddingInference inference, InferenceBatch batch, ModelPolicy policy, long started)
    {
        _inference = inference;
        _batch = batch;
        _policy = policy;
        _call = null;
        _started = started;
    }

    public ValueTask RunAsync(CancellationToken cancellationToken)
    {
        // Armed before the call: a delegate that computes synchronously and checks its token is cancelled too.
        Arm();
        ValueTask call;
        try
        {
            call = _inference.InferAsync(_batch, cancellationToken);
        }
        catch (Exception ex)
        {
            _call = Task.FromException(ex); // a delegate that throws before its first await
            return WaitAsync(cancellationToken);
        }

        if (call.IsCompletedSuccessfully)
        {
            call.GetAwaiter().GetResult(); // completes (and releases) a pooled value-task source
            _call = Task.CompletedTask;
            return default;
        }

        _call = call.AsTask();
        return WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Prepares for another call: only when this one never had its token cancelled and ended (at
    /// <paramref name="ended"/>, a timestamp) before half its hard limit, so its timer was not due and cannot fire late
    /// into the next call.
    /// </summary>
    public bool TryReset(long ended)
    {
        _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        bool early = time.GetElapsedTime(_started, ended) < _policy.HardTimeout / 2;
        if (!early || !_source.TryReset())
        {
            return false;
        }

        _inference = null!;
        _batch = null!;
        _call = null;
        return true;
    }

    /// <summary>Once the abandoned delegate finally stops: observes its fault, releases the batch and the deadline, then
    /// calls <paramref name="stopped"/> (the scheduler frees the call's concurrency slot only then).</summary>
    public void ReleaseWhenDone(Action stopped) =>
        _call!.ContinueWith(
            static (t, state) =>
            {
                _ = t.Exception;
                var (c, stopped) = ((DelegateCall, Action))state!;
                c._batch.Release();
                c.Dispose();
                stopped();
            },
            (this, stopped),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

    public void Dispose()
    {
        _timer?.Dispose();
        _source.Dispose();
    }

    private async ValueTask WaitAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _call!.WaitAsync(cancellationToken).ConfigureAwait(false); // stop waiting at the hard limit even if the delegate ignores its token
        }
        catch (OperationCanceledException) when (_source.IsCancellationRequested)
        {
            throw new TimeoutException($"Inference for model '{_policy.Name}' passed its hard timeout ({_policy.HardTimeout}).");
        }
    }

    private void Arm()
    {
        // The whole hard limit: the delegate is called right after the call started (the breaker never waits), so this
        // reads no clock.
        var remaining = _policy.HardTimeout;
        if (_timer is null)
        {
            _timer = time.CreateTimer(static s => ((DelegateCall)s!).Fire(), this, remaining, Timeout.InfiniteTimeSpan);
        }
        else
        {
            _timer.Change(remaining, Timeout.InfiniteTimeSpan);
        }
    }

    private void Fire()
    {
        try
        {
            _source.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The call ended and was disposed while the timer fired: nothing to cancel.
        }
    }
}
