using ERCache.Diagnostics;

namespace ERCache.Inference;

// Admission: which misses join a pending inference, queue, or are shed; background work; invalidation.
internal sealed partial class InferenceScheduler
{
    /// <summary>
    /// Rule 3's admission for one request's misses: each user gets a ticket whose task completes with its inference.
    /// Users that fit are joined in one pass (<see cref="SubmitOnce"/>); when the request has more misses than the
    /// queue holds, the queue is full of its own users, so it waits for its oldest one to finish and submits more, until
    /// all are submitted or <paramref name="deadline"/> passes. Users not submitted by then are shed
    /// (<see cref="InferenceFailureCause.Overload"/>). Completes synchronously when everything fit at once.
    /// </summary>
    /// <param name="users">The caller's users.</param>
    /// <param name="positions">Which of <paramref name="users"/> missed; <paramref name="tickets"/> follows this order.</param>
    /// <param name="destination">The caller's rows, <c>Dimensions</c> floats per user of <paramref name="users"/>: an
    /// inference this caller creates may deliver its row straight there, until the caller detaches
    /// (<see cref="PendingInference.DetachCreator"/>) or its ticket's task completes.</param>
    /// <param name="now">The caller's reading of the scheduler's clock, just taken (users queued past their deadline by
    /// then are shed rather than sent).</param>
    /// <param name="deadline">The caller's deadline (timestamp on the scheduler's clock).</param>
    /// <param name="tickets">Receives one ticket per position; length at least that of <paramref name="positions"/>.</param>
    /// <param name="inline">Run the first batch on this thread (a caller's dispatch with <c>RunInline</c>).</param>
    /// <param name="urgencies">Per position, how much the user needs a slot (<see cref="MissUrgency"/>); empty when every
    /// user has no failover vector.</param>
    /// <param name="cancellationToken">Stops waiting for the request's own users (their inference goes on).</param>
    public ValueTask SubmitAsync(
        ReadOnlyMemory<long> users, ReadOnlyMemory<int> positions, Memory<float> destination, long now, long deadline, InferenceTicket[] tickets,
        bool inline, ReadOnlyMemory<long> urgencies, CancellationToken cancellationToken)
    {
        int submitted = SubmitOnce(users.Span, positions.Span, destination, urgencies.Span, now, deadline, tickets, inline, waiting: false);
        return submitted == positions.Length
            ? ValueTask.CompletedTask
            : new ValueTask(SubmitAsOwnUsersDrainAsync(users, positions, destination, urgencies, deadline, tickets, submitted, cancellationToken));
    }

    private async Task SubmitAsOwnUsersDrainAsync(
        ReadOnlyMemory<long> users, ReadOnlyMemory<int> positions, Memory<float> destination, ReadOnlyMemory<long> urgencies, long deadline,
        InferenceTicket[] tickets, int submitted, CancellationToken cancellationToken)
    {
        int count = positions.Length, oldest = 0;
        void SkipFinished()
        {
            while (oldest < submitted && tickets[oldest].Task.IsCompleted)
            {
                oldest++;
            }
        }

        while (submitted < count)
        {
            SkipFinished();
            long now = _time.GetTimestamp();
            if (oldest < submitted)
            {
                var remaining = _time.GetElapsedTime(now, deadline);
                if (remaining <= TimeSpan.Zero)
                {
                    break;
                }

                try
                {
                    await tickets[oldest].Task.WaitAsync(remaining, _time, cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    break;
                }

                SkipFinished();
                now = _time.GetTimestamp();
            }

            submitted += SubmitOnce(
                users.Span, positions.Span[submitted..], destination, urgencies.IsEmpty ? default : urgencies.Span[submitted..], now, deadline,
                tickets.AsSpan(submitted), inline: false, waiting: oldest < submitted);
        }

        for (int i = submitted; i < count; i++)
        {
            tickets[i] = new InferenceTicket(InferenceOutcome.Overload, null);
        }

        CountShed(Policy, count - submitted);
    }

    /// <summary>
    /// Joins one caller's misses under a single lock, then starts what the concurrency limit allows. Each user gets
    /// the task that completes with its inference: an already pending one (coalesced), a newly queued one, or an
    /// immediate <see cref="InferenceFailureCause.Overload"/> when the queue is full of other requests' users.
    /// </summary>
    /// <remarks>When the queue fills while this caller has users of its own in it (queued by this call, or by an
    /// earlier one when <paramref name="waiting"/>), the rest are not shed: the call stops and returns how many
    /// positions it handled, and <see cref="SubmitAsync"/> submits the rest as the caller's own users drain. One large request on an idle
    /// model is then served in turn, while requests that find the queue full of others' work are shed at once.</remarks>
    /// <param name="users">The caller's users.</param>
    /// <param name="positions">Which of <paramref name="users"/> missed; <paramref name="tickets"/> follows this order.</param>
    /// <param name="destination">The caller's rows (see <see cref="SubmitAsync"/>).</param>
    /// <param name="urgencies">Per position, how much the user needs a slot; empty for "no failover vector".</param>
    /// <param name="now">The caller's reading of the clock, just taken.</param>
    /// <param name="deadline">The caller's deadline (timestamp); a queued user past every waiter's deadline is shed.</param>
    /// <param name="tickets">Receives one ticket per handled position.</param>
    /// <param name="inline">Run the first batch on this thread (a caller's dispatch with <c>RunInline</c>).</param>
    /// <param name="waiting">The caller still waits for users it queued earlier.</param>
    /// <returns>How many positions were handled (ticketed), from the first.</returns>
    private int SubmitOnce(
        ReadOnlySpan<long> users, ReadOnlySpan<int> positions, Memory<float> destination, ReadOnlySpan<long> urgencies, long now, long deadline,
        Span<InferenceTicket> tickets, bool inline, bool waiting)
    {
        // An open circuit is not checked here: Polly moves Open -> HalfOpen only when a call is attempted, so every
        // miss goes through a (cheap) rejected attempt, and the first one after the break becomes the probe.
        var policy = Policy;
        int dims = policy.Dimensions;
        int coalesced = 0, shed = 0, queued = 0, handled = 0;
        var caller = ERCacheActivities.CallerActivity();
        TakenBatches taken;
        List<PendingInference>? displacedItems = null;
        PendingInference[]? alone = null; // a single miss that started without queueing (TryStartAlone)
        lock (_lock)
        {
            for (; handled < positions.Length; handled++)
            {
                long userId = users[positions[handled]];
                long urgency = urgencies.IsEmpty ? MissUrgency.NoFailover : urgencies[handled];
                if (_pending.TryGetValue(userId, out var existing) && existing.TryJoin())
                {
                    existing.ExtendDeadline(deadline);
                    tickets[handled] = new InferenceTicket(existing.JoinedTask, existing);
                    coalesced++;
                }
                else if (_queue.Count >= policy.MaxQueue && !_disposed && _queue.TryTakeLessUrgentThan(urgency, out var displaced))
                {
                    // A full queue makes room for a user who loses more if shed (rule 12): the least urgent one goes.
                    _pending.RemoveIfCurrent(displaced);
                    _alarm.Remove(displaced);
                    (displacedItems ??= []).Add(displaced);
                    shed++;
                    handled--; // queue this position on the next pass, into the room just made
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
                    int position = positions[handled];
                    var created = new PendingInference(userId, deadline, creatorRow: destination.Slice(position * dims, dims))
                    {
                        Caller = caller,
                        Urgency = urgency,
                    };
                    _pending.Set(created); // replaces an item whose row went to its creator alone (TryJoin)
                    _alarm.Add(created, now);
                    tickets[handled] = new InferenceTicket(created.Task, created, Creator: true);
                    if (positions.Length == 1 && TryStartAlone(created, policy, now))
                    {
                        alone = [created];
                    }
                    else
                    {
                        _queue.Enqueue(created);
                        queued++;
                    }
                }
            }

            taken = alone is null ? TakeBatches(force: false, now) : new TakenBatches(alone, null, null);
        }

        CompleteAsShed(displacedItems); // outside the lock: their waiters continue inline

        _metrics.RecordCoalesced(policy.Name, coalesced);
        CountShed(policy, shed);
        Start(taken, inline, startedAt: now);
        return handled;
    }

    /// <summary>
    /// Starts a request's only miss as a batch of its own, as <see cref="TakeBatches"/> would once it was queued, but
    /// without passing through the queue: nothing is queued, no batch window gathers misses, a slot is free and the
    /// deadline has not passed. Saves a lone miss the queue's ordered insert and removal (and a node of it). Under the lock.
    /// </summary>
    private bool TryStartAlone(PendingInference item, ModelPolicy policy, long now)
    {
        if (_queue.Count > 0 || policy.BatchWindow > TimeSpan.Zero || now >= item.Deadline || !Gate.TryTake())
        {
            return false;
        }

        item.MarkStarted();
        _inFlight++;
        return true;
    }

    /// <summary>Whether the model has spare capacity: nothing queued and two free delegate slots (background work never
    /// takes the last one, which stays for a request). A racy hint for the hit path; <see cref="TrySubmitBackground"/>
    /// checks again under the lock.</summary>
    public bool HasSpareCapacity => Gate.HasSpare && _queue.Count == 0;

    /// <summary>
    /// Queues inference for no waiting caller (a refresh ahead or a drift sample), only while the model has spare
    /// capacity: nothing queued, at most <c>MaxConcurrency</c> − 2 calls in flight (so that the call it starts leaves a
    /// slot free for a request), and no inference pending for the user.
    /// A refresh joins the pending map (a request for the user then waits for it instead of starting another); a drift
    /// sample does not (its vector is never handed to a request). Returns whether it was queued.
    /// </summary>
    public bool TrySubmitBackground(long userId, long deadline, BackgroundWork work, DriftSample? drift)
    {
        TakenBatches taken;
        lock (_lock)
        {
            // Checked under this scheduler's lock. During a rollout's switch the other version's scheduler shares the
            // slots and may take the one left free at the same moment: for its own request, which is what it is for.
            if (_disposed || _queue.Count > 0 || !Gate.HasSpare || _pending.ContainsKey(userId))
            {
                return false;
            }

            var item = new PendingInference(userId, deadline, work, drift);
            if (work == BackgroundWork.Refresh)
            {
                _pending.Add(item);
            }

            _queue.Enqueue(item);
            taken = TakeBatches(force: false, _time.GetTimestamp());
        }

        // Never on the caller's thread: a background call must not delay the hit that asked for it.
        Start(taken, inline: false, background: true);
        return true;
    }

    /// <summary>Sets (or with null, removes) the background work run on this scheduler's spare slots, and starts it.</summary>
    public void SetBackgroundSource(IBackgroundBatchSource? source)
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            // A full fence: a call ending now reads it without the lock (StartBackground) after freeing its slot, and
            // one of the two must see the other's write, or the source waits for its timer.
            Interlocked.Exchange(ref _background, source);
        }

        StartBackground();
    }

    /// <summary>
    /// Starts background batches (see <see cref="IBackgroundBatchSource"/>) while slots are spare: nothing queued, a free
    /// slot, and fewer than the source's own limit of its calls running. Unlike a refresh or a drift sample, a rollout's
    /// warming may take the last free slot (with <c>MaxConcurrency</c> 1 it has no other), in batches small enough that
    /// a request finding it busy still meets its deadline (<see cref="BackgroundBatchLimit"/>). Called after every call
    /// and by the source's timer; a request that arrives later still finds the slots the source may not take.
    /// </summary>
    public void StartBackground()
    {
        if (Volatile.Read(ref _background) is null)
        {
            return; // the common case, told without a lock: whoever sets a source starts it (SetBackgroundSource)
        }

        while (!Gate.AnyQueued) // a miss of any version on the gate goes first
        {
            IBackgroundBatchSource? source;
            lock (_lock)
            {
                source = _background;
                if (source is null || _disposed || _queue.Count > 0 || _backgroundInFlight >= source.MaxConcurrency || !Gate.TryTake())
                {
                    return;
                }

                _inFlight++; // reserved before taking users, so two starters never overshoot the limits
                _backgroundInFlight++;
            }

            var items = source.Take(BackgroundBatchLimit());
            if (items.Length == 0)
            {
                bool queued;
                lock (_lock)
                {
                    _inFlight--;
                    _backgroundInFlight--;
                    Gate.Release();
                    queued = _queue.Count > 0;
                    SignalIdle();
                }

                if (queued)
                {
                    Dispatch(); // a miss arrived while the slot was reserved
                }

                return;
            }

            foreach (var item in items)
            {
                item.MarkStarted();
            }

            DispatchBackground(_runBatch, new BackgroundBatch(items, source.Target));
        }
    }

    /// <summary>Runs background work (a batch, or a source's preparation) where this scheduler's calls run, never on the
    /// caller's thread: the inline dispatcher's work goes to the thread pool.</summary>
    internal void DispatchBackground(Action<object?> work, object? state)
    {
        var dispatcher = ReferenceEquals(_dispatcher, InferenceDispatcher.Inline) ? InferenceDispatcher.ThreadPool : _dispatcher;
        dispatcher.Dispatch(work, state);
    }

    /// <summary>
    /// Most users in one background batch: as many as the tower is seen to infer in a quarter of the deadline (from
    /// the calls so far; one user until a call has been seen), so that a request arriving just after a background call
    /// started and finding every other slot busy still meets its deadline.
    /// </summary>
    private int BackgroundBatchLimit()
    {
        long perUser = Volatile.Read(ref _ticksPerUser);
        if (perUser <= 0)
        {
            return 1;
        }

        long budget = (long)(Policy.InferenceTimeout.TotalSeconds * _time.TimestampFrequency / 4);
        return (int)Math.Clamp(budget / perUser, 1, Policy.MaxBatchSize);
    }

    /// <summary>Follows the tower's time per user (a moving average over the calls that succeeded).</summary>
    private void ObserveCallTime(long elapsedTicks, int users)
    {
        long perUser = Math.Max(1, elapsedTicks / users);
        long previous = Volatile.Read(ref _ticksPerUser);
        Volatile.Write(ref _ticksPerUser, previous == 0 ? perUser : previous + ((perUser - previous) / 8)); // racy by design: an estimate
    }

    /// <summary>Makes a background user of another scheduler's (a rollout's warming) pending here, so a request for it
    /// waits for that inference and a removal invalidates it; null when the user is already pending or this is disposed.</summary>
    public PendingInference? TryAdoptBackground(long userId)
    {
        lock (_lock)
        {
            if (_disposed || _pending.ContainsKey(userId))
            {
                return null;
            }

            var item = new PendingInference(userId, long.MaxValue, BackgroundWork.Warm);
            _pending.Add(item);
            return item;
        }
    }

    /// <summary>Forgets adopted users once their call finished (another scheduler ran them).</summary>
    public void ForgetPending(PendingInference[] items)
    {
        lock (_lock)
        {
            foreach (var item in items)
            {
                _pending.RemoveIfCurrent(item);
            }
        }
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
            items = _pending.TakeAll();
        }

        foreach (var item in items)
        {
            item.Invalidate();
        }
    }
}
