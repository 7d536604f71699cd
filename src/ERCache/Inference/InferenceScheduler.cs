using ERCache.Diagnostics;
using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;
using ERCache.Internal;

namespace ERCache.Inference;

/// <summary>
/// Runs one model version's inference under its SLA and returns an outcome per user: coalesces concurrent misses for
/// the same user, gathers misses from every caller into delegate calls of at most <c>MaxBatchSize</c>, keeps at most
/// <c>MaxConcurrency</c> calls in flight, sheds what cannot start before its deadline, and hands each finished call's
/// rows to its model version's <see cref="IInferenceResultSink"/>. It never touches a tier: what is cached where is the
/// model runtime's decision.
/// </summary>
/// <remarks>
/// Every structure is bounded: the queue by <c>MaxQueue</c> (a miss beyond it is shed at once), the pending map by the
/// queue plus the users of in-flight calls, and the callers of an abandoned call by <c>HardTimeout</c>. A call counts
/// against <c>MaxConcurrency</c> until its delegate returns, abandoned or not: a model that hangs fills its slots and
/// then sheds, rather than piling up calls. Callers wait on a shared task with their own deadline and cancellation;
/// giving up never cancels an inference others wait for.
/// </remarks>
internal sealed class InferenceScheduler : IDisposable
{
    private readonly Dictionary<long, PendingInference> _pending = []; // under _lock, like the queue
    private readonly Queue<PendingInference> _queue = new();
    private readonly Lock _lock = new();
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;
    private readonly ILogger _logger;
    private readonly InferenceDispatcher _dispatcher;
    private readonly DelegateInvoker _invoker;
    private readonly Action<object?> _runBatch;
    private readonly IEmbeddingInference _inference;
    private readonly IInferenceResultSink _sink;
    private ModelPolicy _policy = null!;
    private ITimer? _windowTimer;
    private InferenceBatch? _spareBatch;
    private int _inFlight;
    private bool _disposed; // under _lock

    /// <summary>A scheduler for one model version: <paramref name="inference"/> computes the rows, <paramref name="sink"/>
    /// receives them, <paramref name="policy"/> is the first settings (see <see cref="Configure"/>).</summary>
    public InferenceScheduler(
        TimeProvider time, ERCacheMetrics metrics, ILogger logger, InferenceDispatcher dispatcher, IEmbeddingInference inference,
        IInferenceResultSink sink, ModelPolicy policy)
    {
        _time = time;
        _inference = inference;
        _sink = sink;
        _metrics = metrics;
        _logger = logger;
        _dispatcher = dispatcher;
        _invoker = new DelegateInvoker(time, logger, ReleaseAbandonedSlot);
        _runBatch = state => _ = RunBatchAsync((PendingInference[])state!);
        Configure(policy);
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
    public CircuitState? BreakerState => _invoker.BreakerState;

    private ModelPolicy Policy => Volatile.Read(ref _policy);

    /// <summary>Applies a reload's settings (same version and dimensions): batch size, concurrency, queue, timeouts,
    /// breaker.</summary>
    public void Configure(ModelPolicy policy)
    {
        _invoker.Configure(policy);
        Volatile.Write(ref _policy, policy);
    }

    /// <summary>
    /// Joins one caller's misses under a single lock, then starts what the concurrency limit allows. Each user gets
    /// the task that completes with its inference: an already pending one (coalesced), a newly queued one, or an
    /// immediate <see cref="InferenceFailureCause.Overload"/> when the queue is full of other requests' users.
    /// </summary>
    /// <remarks>When the queue fills while this caller has users of its own in it (queued by this call, or by an
    /// earlier one when <paramref name="waiting"/>), the rest are not shed: the call stops and returns how many
    /// positions it handled, and the caller submits the rest as its own users drain. One large request on an idle
    /// model is then served in turn, while requests that find the queue full of others' work are shed at once.</remarks>
    /// <param name="users">The caller's users.</param>
    /// <param name="positions">Which of <paramref name="users"/> missed; <paramref name="tickets"/> follows this order.</param>
    /// <param name="deadline">The caller's deadline (timestamp); a queued user past every waiter's deadline is shed.</param>
    /// <param name="tickets">Receives one ticket per handled position.</param>
    /// <param name="inline">Run the first batch on this thread (a caller's dispatch with <c>RunInline</c>).</param>
    /// <param name="waiting">The caller still waits for users it queued earlier.</param>
    /// <returns>How many positions were handled (ticketed), from the first.</returns>
    public int Submit(ReadOnlySpan<long> users, ReadOnlySpan<int> positions, long deadline, Span<InferenceTicket> tickets, bool inline, bool waiting)
    {
        // An open circuit is not checked here: Polly moves Open -> HalfOpen only when a call is attempted, so every
        // miss goes through a (cheap) rejected attempt, and the first one after the break becomes the probe.
        var policy = Policy;
        int coalesced = 0, shed = 0, queued = 0, handled = 0;
        PendingInference[]? first;
        List<PendingInference[]>? more;
        lock (_lock)
        {
            for (; handled < positions.Length; handled++)
            {
                long userId = users[positions[handled]];
                if (_pending.TryGetValue(userId, out var existing))
                {
                    existing.ExtendDeadline(deadline);
                    tickets[handled] = new InferenceTicket(existing.Task, existing);
                    coalesced++;
                }
                else if (_queue.Count >= policy.MaxQueue || _disposed)
                {
                    if ((queued > 0 || waiting) && !_disposed)
                    {
                        break; // the queue is full of this caller's own users: it submits the rest as they drain
                    }

                    tickets[handled] = new InferenceTicket(InferenceOutcome.Overload, null);
                    shed++;
                }
                else
                {
                    var created = new PendingInference(userId, deadline);
                    _pending.Add(userId, created);
                    _queue.Enqueue(created);
                    tickets[handled] = new InferenceTicket(created.Task, created);
                    queued++;
                }
            }

            (first, more) = TakeBatches(force: false);
        }

        _metrics.RecordCoalesced(policy.Name, coalesced);
        _metrics.RecordShed(policy.Name, shed);
        Start(first, more, inline);
        return handled;
    }

    /// <summary>Whether the model has spare capacity: nothing queued and a free delegate slot. A racy hint for the hit
    /// path; <see cref="TrySubmitBackground"/> checks again under the lock.</summary>
    public bool HasSpareCapacity => Volatile.Read(ref _inFlight) < Policy.MaxConcurrency && _queue.Count == 0;

    /// <summary>
    /// Queues inference for no waiting caller (a refresh ahead or a drift sample), only while the model has spare
    /// capacity: nothing queued, fewer than <c>MaxConcurrency</c> calls in flight, and no inference pending for the user.
    /// A refresh joins the pending map (a request for the user then waits for it instead of starting another); a drift
    /// sample does not (its vector is never handed to a request). Returns whether it was queued.
    /// </summary>
    public bool TrySubmitBackground(long userId, long deadline, BackgroundWork work, DriftSample? drift)
    {
        PendingInference[]? first;
        List<PendingInference[]>? more;
        lock (_lock)
        {
            if (_disposed || _queue.Count > 0 || _inFlight >= Policy.MaxConcurrency || _pending.ContainsKey(userId))
            {
                return false;
            }

            var item = new PendingInference(userId, deadline, work, drift);
            if (work == BackgroundWork.Refresh)
            {
                _pending.Add(userId, item);
            }

            _queue.Enqueue(item);
            (first, more) = TakeBatches(force: false);
        }

        // Never on the caller's thread: a background call must not delay the hit that asked for it.
        Start(first, more, inline: false, background: true);
        return true;
    }

    /// <summary>
    /// Makes sure no inference that is pending for <paramref name="userId"/> now writes its result (the user is being
    /// removed or set): the pending item leaves the map, so a later miss starts a new inference, and its result, once
    /// it comes, is still handed to its waiters but written nowhere. When the result is being written right now, waits
    /// until it is, so the caller's removal or write comes after it.
    /// </summary>
    public void Invalidate(long userId)
    {
        PendingInference? item;
        lock (_lock)
        {
            if (_pending.Remove(userId, out item) is false)
            {
                return;
            }
        }

        item!.Invalidate();
    }

    /// <summary><see cref="Invalidate(long)"/> for every pending user (a model being cleared).</summary>
    public void InvalidateAll()
    {
        PendingInference[] items;
        lock (_lock)
        {
            items = [.. _pending.Values];
            _pending.Clear();
        }

        foreach (var item in items)
        {
            item.Invalidate();
        }
    }

    /// <summary>Starts as many delegate calls as the concurrency limit allows from the queue, on the dispatcher.</summary>
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
        var policy = Policy;
        long now = _time.GetTimestamp();
        while (_inFlight < policy.MaxConcurrency && _queue.Count > 0 && !_disposed)
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
                    item.Complete(new InferenceOutcome(FailureClassifier.OfShed(), null));
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

    private void Start(PendingInference[]? first, List<PendingInference[]>? more, bool inline, bool background = false)
    {
        if (first is null)
        {
            return;
        }

        // The inline dispatcher would run a background call on the hit's own thread: the pool runs it instead.
        var dispatcher = background && ReferenceEquals(_dispatcher, InferenceDispatcher.Inline) ? InferenceDispatcher.ThreadPool : _dispatcher;

        if (inline)
        {
            // RunBatchAsync handles every exception itself; its closing Dispatch is not inline, so no recursion.
            _ = RunBatchAsync(first);
        }
        else
        {
            dispatcher.Dispatch(_runBatch, first);
        }

        if (more is not null)
        {
            foreach (var items in more)
            {
                dispatcher.Dispatch(_runBatch, items);
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
        var policy = Policy;
        var batch = TakeBatch(policy, items.Length);
        var users = batch.UsersToFill;
        for (int i = 0; i < items.Length; i++)
        {
            users[i] = items[i].UserId;
        }

        bool abandoned = false;
        var activity = ERCacheActivities.StartInference(policy.Name, items.Length);
        try
        {
            _metrics.RecordInferenceCall(policy.Name, items.Length);
            long started = _time.GetTimestamp();
            (var cause, abandoned) = await _invoker.InvokeAsync(_inference, batch, policy).ConfigureAwait(false);
            long now = _time.GetTimestamp();
            _metrics.RecordInferenceDuration(policy.Name, _time.GetElapsedTime(started, now), cause);
            ERCacheActivities.Finish(activity, ERCacheMetrics.CauseName(cause));
            activity = null;

            // Rows go to the model version, which writes them to the tiers in force now (a reload that kept the version may
            // have rebuilt one). After disposal nobody waits any more and the tiers are released: nothing is written.
            bool disposed = Volatile.Read(ref _disposed);
            for (int i = 0; i < items.Length; i++)
            {
                var item = items[i];
                item.Prepare(cause == InferenceFailureCause.None && !disposed ? _sink.Accept(batch, i, now, item) : new InferenceOutcome(disposed ? InferenceFailureCause.Error : cause, null));
            }
        }
        catch (Exception ex)
        {
            // Only a bug of ours gets here (the delegate's failures are classified by the invoker); never leave
            // callers or the pending map hanging: every user not answered yet gets an error.
            Log.SchedulerFault(_logger, policy.Name, ex);
            ERCacheActivities.Finish(activity, ERCacheMetrics.CauseName(InferenceFailureCause.Error));
            foreach (var item in items)
            {
                item.Prepare(new InferenceOutcome(InferenceFailureCause.Error, null));
            }
        }
        finally
        {
            if (!abandoned && (Volatile.Read(ref _disposed) || Interlocked.CompareExchange(ref _spareBatch, batch, null) is not null))
            {
                batch.Release(); // at most one spare batch (its buffers stay out of the pool while it waits), none after disposal
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

                if (!abandoned)
                {
                    _inFlight--; // an abandoned call keeps its slot until it returns (ReleaseAbandonedSlot)
                }

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

    /// <summary>A call abandoned at its hard limit has returned: its concurrency slot is free.</summary>
    private void ReleaseAbandonedSlot()
    {
        bool queued;
        lock (_lock)
        {
            _inFlight--;
            queued = _queue.Count > 0;
        }

        if (queued)
        {
            Dispatch();
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
    /// Stops starting calls: the window timer and the spare batch and call are released, and users still queued get
    /// an error (their callers have all been answered by then). Calls that still run finish on their own and write
    /// nothing.
    /// </summary>
    public void Dispose()
    {
        List<PendingInference> dropped = [];
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _windowTimer?.Dispose();
            _windowTimer = null;
            while (_queue.TryDequeue(out var item))
            {
                RemovePending(item);
                dropped.Add(item);
            }
        }

        foreach (var item in dropped)
        {
            item.Complete(new InferenceOutcome(InferenceFailureCause.Error, null));
        }

        Interlocked.Exchange(ref _spareBatch, null)?.Release();
        _invoker.Dispose();
    }

}
