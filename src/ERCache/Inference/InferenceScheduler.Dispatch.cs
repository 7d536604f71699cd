using ERCache.Diagnostics;
using ERCache.Internal;

namespace ERCache.Inference;

// Dispatch: batches taken off the queue under the concurrency limit and the batch window, run on the dispatcher, their
// rows handed to the sink; slots freed; the spare batch reused.
internal sealed partial class InferenceScheduler
{
    /// <summary>Starts as many delegate calls as the concurrency limit allows from the queue, on the dispatcher.</summary>
    /// <param name="force">Send a partial batch now even when a batch window is configured.</param>
    public void Dispatch(bool force = false)
    {
        TakenBatches taken;
        lock (_lock)
        {
            taken = TakeBatches(force, _time.GetTimestamp());
        }

        Start(taken, inline: false);
    }

    /// <summary>Takes batches off the queue while calls may start; takes out users nobody waits for any more by
    /// <paramref name="now"/> (a reading of the clock), for <see cref="Start"/> to complete as shed outside the lock.
    /// Under the lock.</summary>
    private TakenBatches TakeBatches(bool force, long now)
    {
        PendingInference[]? first = null;
        List<PendingInference[]>? more = null;
        List<PendingInference>? shedItems = null;
        var policy = Policy;
        while (_queue.Count > 0 && !_disposed && Gate.TryTake())
        {
            if (!force && policy.BatchWindow > TimeSpan.Zero && _queue.Count < policy.MaxBatchSize)
            {
                // Gather: the first waiting miss opens a window; a full batch or the window's end sends it.
                Gate.Release();
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
                    _pending.RemoveIfCurrent(item);
                    _alarm.Remove(item);
                    (shedItems ??= []).Add(item);
                    shed++;
                    continue;
                }

                item.MarkStarted();
                items[count++] = item;
            }

            CountShed(policy, shed);
            if (count == 0)
            {
                Gate.Release(); // every user taken had been given up on: the slot was not used
            }
            else
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

        SignalIdle(); // users shed above may have been the last ones queued
        return new TakenBatches(first, more, shedItems);
    }

    /// <summary>Completes the users <see cref="TakeBatches"/> shed, then starts its batches. Outside the lock: the shed
    /// users' waiters continue on this thread. <paramref name="startedAt"/>: with <paramref name="inline"/>, the caller's
    /// reading of the clock, just taken, which the inline call counts as its start.</summary>
    private void Start(TakenBatches taken, bool inline, bool background = false, long? startedAt = null)
    {
        CompleteAsShed(taken.Shed);
        if (taken.First is not { } first)
        {
            return;
        }

        var more = taken.More;

        // The inline dispatcher would run a background call on the hit's own thread: the pool runs it instead.
        var dispatcher = background && ReferenceEquals(_dispatcher, InferenceDispatcher.Inline) ? InferenceDispatcher.ThreadPool : _dispatcher;

        if (inline)
        {
            // RunBatchAsync handles every exception itself; its closing Dispatch is not inline, so no recursion. The call
            // starts now: the submitter's clock reading, just taken, is its start (one reading less per inline miss).
            _ = RunBatchAsync(first, target: null, startedAt);
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

    /// <summary>The deadline alarm fired: answers the creators whose deadline passed, outside the lock (they continue on
    /// this thread, as they would have on a timer of their own).</summary>
    private void OnAlarm()
    {
        List<PendingInference>? due;
        lock (_lock)
        {
            due = _alarm.TakeDue(_time.GetTimestamp());
        }

        if (due is null)
        {
            return;
        }

        foreach (var item in due)
        {
            item.TimeOutCreator();
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

    /// <summary>Runs one delegate call on a slot of this scheduler. <paramref name="target"/> is the scheduler whose users
    /// these are when they are another version's background work (a rollout's warming): its version names the batch, its
    /// sink takes the rows and its pending map held the users; null for this scheduler's own users. <paramref name="startedAt"/>
    /// is a reading of the clock taken just before (an inline call's), or null to read it here.</summary>
    private async Task RunBatchAsync(PendingInference[] items, InferenceScheduler? target, long? startedAt = null)
    {
        var policy = Policy;
        var owner = target ?? this;
        var batch = TakeBatch(policy.Name, owner.Version, policy.Dimensions, items.Length);
        var users = batch.UsersToFill;
        for (int i = 0; i < items.Length; i++)
        {
            users[i] = items[i].UserId;
        }

        bool abandoned = false;
        (InferenceFailureCause Cause, Exception? Failure) failed = (InferenceFailureCause.None, null);
        var activity = ERCacheActivities.Source.HasListeners()
            ? ERCacheActivities.StartInference(policy.Name, items.Length, ERCacheActivities.Links(items.Select(i => i.Caller)))
            : null;
        try
        {
            _metrics.RecordInferenceCall(policy.Name, items.Length);
            long started = startedAt ?? _time.GetTimestamp();
            (var cause, abandoned, var failure, long now) = await _invoker.InvokeAsync(_inference, batch, policy, started).ConfigureAwait(false);
            failed = (cause, failure);
            _metrics.RecordInferenceDuration(policy.Name, _time.GetElapsedTime(started, now), cause);
            if (cause == InferenceFailureCause.None)
            {
                ObserveCallTime(now - started, items.Length);
            }

            ERCacheActivities.Finish(activity, ERCacheMetrics.CauseName(cause));
            activity = null;

            // Rows go to the model version, which writes them to the tiers in force now (a reload that kept the version may
            // have rebuilt one). After disposal nobody waits any more and the tiers are released: nothing is written.
            bool disposed = owner.IsDisposed;
            for (int i = 0; i < items.Length; i++)
            {
                var item = items[i];
                item.Prepare(cause == InferenceFailureCause.None && !disposed ? owner._sink.Accept(batch, i, started, now, item) : new InferenceOutcome(disposed ? InferenceFailureCause.Error : cause, null));
            }
        }
        catch (Exception ex)
        {
            Fault(policy, items, activity, ex);
        }
        finally
        {
            EndBatch(policy, items, batch, target, abandoned, failed);
        }
    }

    // Fault and EndBatch are out of RunBatchAsync because they loop: the runtime compiles a method with a loop in an
    // exception handler once, optimized but without tiering's profile data, and this one runs for every delegate call.

    /// <summary>Only a bug of ours gets here (the delegate's failures are classified by the invoker); never leave callers
    /// or the pending map hanging: every user not answered yet gets an error.</summary>
    private void Fault(ModelPolicy policy, PendingInference[] items, System.Diagnostics.Activity? activity, Exception ex)
    {
        Log.SchedulerFault(_logger, policy.Name, ex);
        ERCacheActivities.Finish(activity, ERCacheMetrics.CauseName(InferenceFailureCause.Error));
        foreach (var item in items)
        {
            item.Prepare(new InferenceOutcome(InferenceFailureCause.Error, null));
        }
    }

    /// <summary>The end of a delegate call, answered or not: keeps the batch as the spare, forgets the users, frees the
    /// slot, answers the callers, then offers the slot on. <paramref name="policy"/> is the settings the call started
    /// with (a reload may have replaced <see cref="Policy"/> since).</summary>
    private void EndBatch(
        ModelPolicy policy, PendingInference[] items, InferenceBatch batch, InferenceScheduler? target, bool abandoned,
        (InferenceFailureCause Cause, Exception? Failure) failed)
    {
        bool allSlotsAbandoned = false;
        if (!abandoned && (Volatile.Read(ref _disposed) || Interlocked.CompareExchange(ref _spareBatch, batch, null) is not null))
        {
            batch.Release(); // at most one spare batch (its buffers stay out of the pool while it waits), none after disposal
        }

        // Remove before completing: a caller arriving after this sees the tiers, not a finished pending. One
        // lock for the whole batch and the in-flight count.
        target?.ForgetPending(items);
        bool queued;
        lock (_lock)
        {
            if (target is null)
            {
                foreach (var item in items)
                {
                    _pending.RemoveIfCurrent(item);
                    _alarm.Remove(item);
                }
            }
            else
            {
                _backgroundInFlight--; // an abandoned one still holds its slot (below), not a warming place
            }

            if (!abandoned)
            {
                _inFlight--; // an abandoned call keeps its slot until it returns (ReleaseAbandonedSlot)
                Gate.Release();
            }
            else
            {
                allSlotsAbandoned = ++_abandoned == policy.MaxConcurrency;
            }

            SignalIdle();
            queued = _queue.Count > 0;
        }

        // The rest is answering the callers: the dispatcher may give this thread its next call (one of theirs) now.
        _dispatcher.OfferCurrentThread(items);
        foreach (var item in items)
        {
            item.CompletePrepared();
        }

        _invoker.LogFailure(policy, items.Length, failed.Cause, failed.Failure); // after the callers are answered
        if (allSlotsAbandoned)
        {
            Log.AllSlotsAbandoned(_logger, policy.Name, policy.MaxConcurrency, policy.HardTimeout);
        }

        // Not forced: with a batch window, a partial batch still waits for the window (its timer is armed). The
        // slot goes to the most urgent queued miss of any version on the gate, else to background work.
        Gate.Offer(this, queued);
    }

    /// <summary>A call abandoned at its hard limit has returned: its concurrency slot is free.</summary>
    private void ReleaseAbandonedSlot()
    {
        lock (_lock)
        {
            _abandoned--;
            _inFlight--;
            Gate.Release();
            SignalIdle();
        }

        Gate.Offer();
    }

    /// <summary>The spare batch when its buffers fit (a finished call's, kept to save renting three buffers per
    /// call), else a new one.</summary>
    private InferenceBatch TakeBatch(string model, string version, int dimensions, int count)
    {
        var spare = Interlocked.Exchange(ref _spareBatch, null);
        if (spare is not null)
        {
            if (spare.TryReuse(model, version, dimensions, count))
            {
                return spare;
            }

            spare.Release();
        }

        return new InferenceBatch(model, version, dimensions, count);
    }

    /// <summary>The one place sheds are counted: at admission (queue full, or a request's own users did not drain in
    /// time) and at dispatch (a queued user's every waiter gave up).</summary>
    private void CountShed(ModelPolicy policy, int shed) => _metrics.RecordShed(policy.Name, shed);

    /// <summary>Answers users taken out of the queue (given up on, or displaced by more urgent ones) as shed. Outside the
    /// lock: their waiters continue on this thread.</summary>
    private static void CompleteAsShed(List<PendingInference>? items)
    {
        if (items is null)
        {
            return;
        }

        foreach (var item in items)
        {
            item.Complete(new InferenceOutcome(FailureClassifier.OfShed(), null));
        }
    }

    /// <summary>What <see cref="TakeBatches"/> took off the queue: the batches to start and the users to complete as shed.</summary>
    private readonly record struct TakenBatches(PendingInference[]? First, List<PendingInference[]>? More, List<PendingInference>? Shed);
}
