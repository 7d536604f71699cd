using ERCache.Internal;

namespace ERCache.Inference;

/// <summary>
/// One delegate call and its hard limit: a token cancelled <c>HardTimeout</c> after the call started. The call's
/// state travels through the breaker as one object rather than a closure and a delegate per call. A call whose token
/// was never cancelled is reset and reused by the next one (its token source and timer with it).
/// </summary>
/// <remarks>
/// The timer is not set for each call nor stopped when one ends: every change of a timer takes the timer queue's lock,
/// and two per call were about 5 % of an inline miss. It stays armed for the earliest limit it was set for. When it
/// fires, it cancels the call running then if that call's own limit has passed, re-arms for that limit if not, and
/// stays off when no call runs; the next call arms it again. With steady calls it fires about once per hard limit.
/// The firing's decision and a call's reset are made under one lock, and a call whose token the timer decided to cancel
/// is never reused, so a cancellation never reaches the next call.
/// </remarks>
internal sealed class DelegateCall(TimeProvider time) : IDisposable
{
    private const long NoLimit = long.MaxValue;
    private readonly CancellationTokenSource _source = new();
    private readonly Lock _limitLock = new();
    private ITimer? _timer;
    private long _limitAt = NoLimit; // under _limitLock: when the running call passes its hard limit (timestamp)
    private long _firesAt = NoLimit; // under _limitLock: when the timer fires (timestamp), NoLimit when it is off
    private bool _cancelling; // under _limitLock: the timer is cancelling (or has cancelled) this call's token
    private IEmbeddingInference _inference = null!;
    private InferenceBatch _batch = null!;
    private ModelPolicy _policy = null!;
    private long _started;
    private Task? _call;
    private ModelPolicy? _limitPolicy; // the settings _limitTicks was computed for
    private long _limitTicks; // _limitPolicy's hard limit in timestamp units

    public CancellationToken Token => _source.Token;

    /// <summary>For tests: runs on the timer's thread after it decided to cancel this call's token and before it does
    /// (the window in which the call may end and be offered for reuse).</summary>
    internal Action? CancellationDecided { get; set; }

    /// <summary>Whether the delegate was called and has not finished (it is abandoned if we stop waiting).</summary>
    public bool IsRunning => _call is { IsCompleted: false };

    /// <summary>Whether the completed call produced no usable row and some invalid ones (for the breaker: see
    /// <see cref="FailureClassifier.OfCall"/>).</summary>
    public bool ProducedNothingUsable => FailureClassifier.OfCall(_batch) == InferenceFailureCause.InvalidVector;

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

    /// <summary>Prepares for another call: only when the timer never decided to cancel this one's token. The timer may
    /// stay armed; when it fires, it finds the next call's own limit, or no call.</summary>
    public bool TryReset()
    {
        lock (_limitLock)
        {
            _limitAt = NoLimit;
            if (_cancelling)
            {
                return false;
            }
        }

        if (!_source.TryReset())
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
        lock (_limitLock)
        {
            // A callback the timer had already dispatched may still run: it finds no call, and changes nothing.
            _limitAt = NoLimit;
        }

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

    /// <summary>Sets this call's limit; changes the timer only when it is off or set to fire after that limit (the first
    /// call, the first after an idle firing, or a reload that shortened the limit).</summary>
    private void Arm()
    {
        var hardTimeout = _policy.HardTimeout;
        if (!ReferenceEquals(_limitPolicy, _policy))
        {
            _limitTicks = Math.Min(TimestampTicks.Of(hardTimeout, time.TimestampFrequency), NoLimit - 1); // once per settings, not per call
            _limitPolicy = _policy;
        }

        long limitAt = _started > NoLimit - 1 - _limitTicks ? NoLimit - 1 : _started + _limitTicks;
        lock (_limitLock)
        {
            _limitAt = limitAt;
            if (_firesAt <= limitAt)
            {
                return; // it fires first, and then re-arms for this limit
            }

            _firesAt = limitAt;

            // The whole hard limit from now: the delegate is called right after the call started, so this reads no clock.
            if (_timer is null)
            {
                _timer = time.CreateTimer(static s => ((DelegateCall)s!).Fire(), this, hardTimeout, Timeout.InfiniteTimeSpan);
            }
            else
            {
                _timer.Change(hardTimeout, Timeout.InfiniteTimeSpan);
            }
        }
    }

    private void Fire()
    {
        lock (_limitLock)
        {
            _firesAt = NoLimit;
            if (_limitAt == NoLimit || _cancelling)
            {
                return; // no call runs (the next one arms the timer again), or its token is being cancelled already
            }

            long now = time.GetTimestamp();
            if (now < _limitAt)
            {
                _firesAt = _limitAt; // armed for an earlier call: wait for this one's own limit
                _timer?.Change(time.GetElapsedTime(now, _limitAt), Timeout.InfiniteTimeSpan);
                return;
            }

            _cancelling = true; // from here on this call is not reused, so the cancellation below reaches only it
        }

        CancellationDecided?.Invoke();
        try
        {
            _source.Cancel(); // outside the lock: the token's callbacks (the delegate's, the wait's) run here
        }
        catch (ObjectDisposedException)
        {
            // The call ended and was disposed while the timer fired: nothing to cancel.
        }
    }
}
