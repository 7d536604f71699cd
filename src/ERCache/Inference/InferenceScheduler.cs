using ERCache.Diagnostics;
using ERCache.Policies;
using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;

namespace ERCache.Inference;

/// <summary>
/// Runs one model version's inference under its SLA: coalesces concurrent misses for the same user, gathers
/// misses from every caller into delegate calls of at most <c>MaxBatchSize</c>, keeps at most
/// <c>MaxConcurrency</c> calls in flight, sheds what cannot start before its deadline, and stops calling a
/// failing model while its circuit is open.
/// </summary>
/// <remarks>
/// Every structure is bounded: the queue by <c>MaxQueue</c> (a miss beyond it is shed at once), the pending map
/// by the queue plus the users of in-flight calls, and an abandoned call by <c>HardTimeout</c>. Callers wait on
/// a shared task with their own deadline and cancellation; giving up never cancels an inference others wait for.
/// </remarks>
internal sealed partial class InferenceScheduler
{
    private readonly Dictionary<long, PendingInference> _pending = []; // under _lock, like the queue
    private readonly Queue<PendingInference> _queue = new();
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;
    private readonly ILogger _logger;
    private ModelRuntime _runtime = null!;
    private ModelCircuitBreaker? _breaker;
    private ITimer? _windowTimer;
    private DelegateCall? _spareCall;
    private InferenceBatch? _spareBatch;
    private int _inFlight;

    public InferenceScheduler(TimeProvider time, ERCacheMetrics metrics, ILogger logger)
    {
        _time = time;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>Delegate calls in flight now.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Users waiting for a free delegate call.</summary>
    public int Queued
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Users queued or in a delegate call (the pending map's size).</summary>
    public int PendingUsers
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>The breaker's state, or null when the breaker is disabled.</summary>
    public CircuitState? BreakerState => Volatile.Read(ref _breaker)?.State;

    private ModelRuntime Runtime => Volatile.Read(ref _runtime);

    /// <summary>Points the scheduler at the model's current runtime (same version and dimensions) after a reload.</summary>
    public void Attach(ModelRuntime runtime)
    {
        var settings = runtime.Policy.CircuitBreaker;
        var current = Volatile.Read(ref _breaker);
        if (!settings.Enabled)
        {
            Volatile.Write(ref _breaker, null);
        }
        else if (current is null || current.Settings != settings)
        {
            // New or changed settings start a fresh breaker; unchanged settings keep its state across a reload.
            string model = runtime.Policy.Name;
            Volatile.Write(ref _breaker, new ModelCircuitBreaker(settings, _time, state => LogBreakerState(model, state)));
        }

        Volatile.Write(ref _runtime, runtime);
    }

    /// <summary>
    /// Joins one caller's misses under a single lock, then starts what the concurrency limit allows. Each user gets
    /// the task that completes with its inference: an already pending one (coalesced), a newly queued one, or an
    /// immediate <see cref="InferenceFailureCause.Overload"/> when the queue is full.
    /// </summary>
    /// <param name="users">The caller's users.</param>
    /// <param name="positions">Which of <paramref name="users"/> missed; <paramref name="tickets"/> follows this order.</param>
    /// <param name="deadline">The caller's deadline (timestamp); a queued user past every waiter's deadline is shed.</param>
    /// <param name="tickets">Receives one ticket per position.</param>
    /// <param name="inline">Run the first batch on this thread (a caller's dispatch with <c>RunInline</c>).</param>
    public void Submit(ReadOnlySpan<long> users, ReadOnlySpan<int> positions, long deadline, Span<InferenceTicket> tickets, bool inline)
    {
        // An open circuit is not checked here: Polly moves Open -> HalfOpen only when a call is attempted, so every
        // miss goes through a (cheap) rejected attempt, and the first one after the break becomes the probe.
        var policy = Runtime.Policy;
        int coalesced = 0, shed = 0;
        PendingInference[]? first;
        List<PendingInference[]>? more;
        lock (_lock)
        {
            for (int i = 0; i < positions.Length; i++)
            {
                long userId = users[positions[i]];
                if (_pending.TryGetValue(userId, out var existing))
                {
                    existing.ExtendDeadline(deadline);
                    tickets[i] = new InferenceTicket(existing.Task, existing);
                    coalesced++;
                }
                else if (_queue.Count >= policy.MaxQueue)
                {
                    tickets[i] = new InferenceTicket(InferenceOutcome.Overload, null);
                    shed++;
                }
                else
                {
                    var created = new PendingInference(userId, deadline);
                    _pending.Add(userId, created);
                    _queue.Enqueue(created);
                    tickets[i] = new InferenceTicket(created.Task, created);
                }
            }

            (first, more) = TakeBatches(force: false);
        }

        _metrics.RecordCoalesced(policy.Name, coalesced);
        _metrics.RecordShed(policy.Name, shed);
        Start(first, more, inline);
    }

    /// <summary>Starts as many delegate calls as the concurrency limit allows from the queue, on the thread pool.</summary>
    /// <param name="force">Send a partial batch now even when a batch window is configured.</param>
    public void Dispatch(bool force = false)
    {
        PendingInference[]? first;
        List<PendingInference[]>? more;
        lock (_lock)
        {
            (first, more) = TakeBatches(force);
        }

        Start(first, more, inline: false);
    }

    /// <summary>Takes batches off the queue while calls may start; sheds users nobody waits for any more. Under the lock.</summary>
    private (PendingInference[]? First, List<PendingInference[]>? More) TakeBatches(bool force)
    {
        PendingInference[]? first = null;
        List<PendingInference[]>? more = null;
        var policy = Runtime.Policy;
        long now = _time.GetTimestamp();
        while (_inFlight < policy.MaxConcurrency && _queue.Count > 0)
        {
            if (!force && policy.BatchWindow > TimeSpan.Zero && _queue.Count < policy.MaxBatchSize)
            {
                // Gather: the first waiting miss opens a window; a full batch or the window's end sends it.
                _windowTimer ??= _time.CreateTimer(static s => ((InferenceScheduler)s!).OnWindowElapsed(), this, policy.BatchWindow, Timeout.InfiniteTimeSpan);
                break;
            }

            var items = new PendingInference[Math.Min(policy.MaxBatchSize, _queue.Count)];
            int count = 0, shed = 0;
            while (count < items.Length && _queue.TryDequeue(out var item))
            {
                if (now >= item.Deadline)
                {
                    // Nobody waits for it any more: do not spend the model's capacity on it.
                    RemovePending(item);
                    item.Complete(new InferenceOutcome(InferenceFailureCause.Overload, null));
                    shed++;
                    continue;
                }

                item.MarkStarted();
                items[count++] = item;
            }

            _metrics.RecordShed(policy.Name, shed);
            if (count > 0)
            {
                _inFlight++;
                if (count < items.Length)
                {
                    Array.Resize(ref items, count);
                }

                if (first is null)
                {
                    first = items;
                }
                else
                {
                    (more ??= []).Add(items);
                }
            }
        }

        return (first, more);
    }

    private void Start(PendingInference[]? first, List<PendingInference[]>? more, bool inline)
    {
        if (first is null)
        {
            return;
        }

        if (inline)
        {
            // RunBatchAsync handles every exception itself; its closing Dispatch is not inline, so no recursion.
            _ = RunBatchAsync(first);
        }
        else
        {
            StartOnPool(first);
        }

        if (more is not null)
        {
            foreach (var items in more)
            {
                StartOnPool(items);
            }
        }
    }

    /// <summary>Forgets a user's pending item (not a newer one for the same user). Under the lock.</summary>
    private void RemovePending(PendingInference item)
    {
        if (_pending.TryGetValue(item.UserId, out var current) && ReferenceEquals(current, item))
        {
            _pending.Remove(item.UserId);
        }
    }

    /// <summary>On the thread pool: a delegate that completes synchronously must not recurse through Dispatch.
    /// (A method of its own, so the closure is allocated only when a batch goes to the pool.)</summary>
    private void StartOnPool(PendingInference[] items) => _ = Task.Run(() => RunBatchAsync(items));

    private void OnWindowElapsed()
    {
        lock (_lock)
        {
            _windowTimer?.Dispose();
            _windowTimer = null;
        }

        Dispatch(force: true);
    }

    private async Task RunBatchAsync(PendingInference[] items)
    {
        var runtime = Runtime;
        var policy = runtime.Policy;
        var batch = TakeBatch(policy, items.Length);
        var users = batch.UsersToFill;
        for (int i = 0; i < items.Length; i++)
        {
            users[i] = items[i].UserId;
        }

        bool abandoned = false;
        try
        {
            _metrics.RecordInferenceCall(policy.Name, items.Length);
            long started = _time.GetTimestamp();
            (var cause, abandoned) = await InvokeAsync(runtime, batch).ConfigureAwait(false);
            long now = _time.GetTimestamp();
            _metrics.RecordInferenceDuration(policy.Name, _time.GetElapsedTime(started, now), cause);

            // Results go to the tiers in force now (a reload that kept this version may have rebuilt one).
            var target = Runtime;
            for (int i = 0; i < items.Length; i++)
            {
                var item = items[i];
                var itemCause = cause == InferenceFailureCause.None ? batch.Validate(i) : cause;
                InferenceOutcome outcome;
                if (itemCause == InferenceFailureCause.None)
                {
                    var vector = batch.Row(i).ToArray();
                    if (now < item.Deadline || target.Policy.WriteLateResults)
                    {
                        target.Direct?.Write(item.UserId, vector, now, target.DirectTtl);
                        target.Failover?.Write(item.UserId, vector, now, target.FailoverTtl);
                    }

                    outcome = new InferenceOutcome(InferenceFailureCause.None, vector);
                }
                else
                {
                    outcome = new InferenceOutcome(itemCause, null);
                }

                item.Prepare(outcome);
            }
        }
        catch (Exception ex)
        {
            // Only a bug of ours gets here (the delegate's failures are classified in InvokeAsync); never leave
            // callers or the pending map hanging: every user not answered yet gets an error.
            LogSchedulerFault(policy.Name, ex);
            foreach (var item in items)
            {
                item.Prepare(new InferenceOutcome(InferenceFailureCause.Error, null));
            }
        }
        finally
        {
            if (!abandoned && Interlocked.CompareExchange(ref _spareBatch, batch, null) is not null)
            {
                batch.Release(); // at most one spare batch: its buffers stay out of the pool while it waits
            }

            // Remove before completing: a caller arriving after this sees the tiers, not a finished pending. One
            // lock for the whole batch and the in-flight count.
            bool queued;
            lock (_lock)
            {
                foreach (var item in items)
                {
                    RemovePending(item);
                }

                _inFlight--;
                queued = _queue.Count > 0;
            }

            foreach (var item in items)
            {
                item.CompletePrepared();
            }

            // Not forced: with a batch window, a partial batch still waits for the window (its timer is armed).
            if (queued)
            {
                Dispatch();
            }
        }
    }

    /// <summary>The spare batch when its buffers fit (a finished call's, kept to save renting three buffers per
    /// call), else a new one.</summary>
    private InferenceBatch TakeBatch(ModelPolicy policy, int count)
    {
        var spare = Interlocked.Exchange(ref _spareBatch, null);
        if (spare is not null)
        {
            if (spare.TryReuse(policy.Name, policy.Version, policy.Dimensions, count))
            {
                return spare;
            }

            spare.Release();
        }

        return new InferenceBatch(policy.Name, policy.Version, policy.Dimensions, count);
    }

    /// <summary>
    /// Calls the delegate through the breaker with the hard limit on its token. Returns the batch-wide cause
    /// (None when the delegate completed) and whether the call was abandoned still running, in which case its
    /// buffers are released only when it finally stops. A delegate that completes synchronously (with no breaker
    /// or through a closed one) is answered without an async state machine.
    /// </summary>
    private ValueTask<(InferenceFailureCause Cause, bool Abandoned)> InvokeAsync(ModelRuntime runtime, InferenceBatch batch)
    {
        var call = Interlocked.Exchange(ref _spareCall, null) ?? new DelegateCall(_time);
        call.Start(runtime.Inference!, batch, runtime.Policy);
        ValueTask running;
        try
        {
            var breaker = Volatile.Read(ref _breaker);
            running = breaker is null
                ? call.RunAsync(call.Token)
                : breaker.ExecuteAsync(static (c, ct) => c.RunAsync(ct), call, call.Token);
        }
        catch (Exception ex)
        {
            running = ValueTask.FromException(ex);
        }

        if (running.IsCompletedSuccessfully)
        {
            running.GetAwaiter().GetResult();
            return new((InferenceFailureCause.None, EndCall(call)));
        }

        return AwaitCallAsync(running, call, runtime.Policy, batch.Count);
    }

    private async ValueTask<(InferenceFailureCause Cause, bool Abandoned)> AwaitCallAsync(ValueTask running, DelegateCall call, ModelPolicy policy, int users)
    {
        var cause = InferenceFailureCause.None;
        try
        {
            await running.ConfigureAwait(false);
        }
        catch (BrokenCircuitException)
        {
            cause = InferenceFailureCause.CircuitOpen;
        }
        catch (TimeoutException)
        {
            LogHardTimeout(policy.Name, users, policy.HardTimeout);
            cause = InferenceFailureCause.Timeout;
        }
        catch (Exception ex)
        {
            LogInferenceFailed(policy.Name, users, ex);
            cause = InferenceFailureCause.Error;
        }

        return (cause, EndCall(call));
    }

    /// <summary>
    /// Ends a call: an abandoned one (still running past its hard limit) keeps its buffers until it stops; a finished
    /// one is kept for the next call when it can be reused, else disposed. Returns whether it was abandoned.
    /// </summary>
    private bool EndCall(DelegateCall call)
    {
        if (call.IsRunning)
        {
            call.ReleaseWhenDone(); // keep the buffers alive until the delegate really stops, and observe its fault
            return true;
        }

        if (!call.TryReset() || Interlocked.CompareExchange(ref _spareCall, call, null) is not null)
        {
            call.Dispose(); // at most one spare: concurrent calls beyond it allocate their own
        }

        return false;
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Inference for model '{Model}' failed for a batch of {Users} user(s); serving failover or fallback.")]
    private partial void LogInferenceFailed(string model, int users, Exception exception);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Inference for model '{Model}' passed its hard timeout {HardTimeout} for a batch of {Users} user(s); the call was cancelled and abandoned.")]
    private partial void LogHardTimeout(string model, int users, TimeSpan hardTimeout);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "The circuit breaker of model '{Model}' is now {State}.")]
    private partial void LogBreakerState(string model, CircuitState state);

    [LoggerMessage(EventId = 5, Level = LogLevel.Error, Message = "ERCache's inference scheduler for model '{Model}' failed; the batch's users get a fallback.")]
    private partial void LogSchedulerFault(string model, Exception exception);

    /// <summary>
    /// One delegate call and its hard limit: a token cancelled <c>HardTimeout</c> after the call started. The call's
    /// state travels through the breaker as one object rather than a closure and a delegate per call. A call that
    /// finished well inside its limit is reset and reused by the next one (its token source and timer with it).
    /// </summary>
    private sealed class DelegateCall(TimeProvider time) : IDisposable
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

        public void Start(IEmbeddingInference inference, InferenceBatch batch, ModelPolicy policy)
        {
            _inference = inference;
            _batch = batch;
            _policy = policy;
            _call = null;
            _started = time.GetTimestamp();
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
        /// Prepares for another call: only when this one never had its token cancelled and ended before half its
        /// hard limit, so its timer was not due and cannot fire late into the next call.
        /// </summary>
        public bool TryReset()
        {
            _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            bool early = time.GetElapsedTime(_started) < _policy.HardTimeout / 2;
            if (!early || !_source.TryReset())
            {
                return false;
            }

            _inference = null!;
            _batch = null!;
            _call = null;
            return true;
        }

        /// <summary>Releases the batch and the deadline once the abandoned delegate finally stops; observes its fault.</summary>
        public void ReleaseWhenDone() =>
            _call!.ContinueWith(
                static (t, state) =>
                {
                    _ = t.Exception;
                    var c = (DelegateCall)state!;
                    c._batch.Release();
                    c.Dispose();
                },
                this,
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
            var remaining = _policy.HardTimeout - time.GetElapsedTime(_started);
            if (remaining <= TimeSpan.Zero)
            {
                _source.Cancel();
                return;
            }

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
}
