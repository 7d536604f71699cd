using ERCache.Diagnostics;
using ERCache.Internal;

namespace ERCache.Regional;

// Writes: values queued by the request path, grouped and written by the flush loop (or a flush), each group bounded by
// WriteTimeout and counted when dropped.
internal sealed partial class RegionalTier
{
    /// <summary>Queues a fresh value for the next grouped write; drops and counts it when the queue is full (logged a
    /// few lines a minute at most, and remembered for the health check). Never blocks.</summary>
    public bool TryEnqueue(in PendingWrite write)
    {
        bool disposed = Volatile.Read(ref _disposed) != 0;
        int capacity = Volatile.Read(ref _settings).QueueCapacity;
        if (Interlocked.Increment(ref _queued) > capacity || disposed)
        {
            Interlocked.Decrement(ref _queued);
            _metrics.RecordRegionalDropped(disposed ? "disposed" : "queue_full", 1);
            if (!disposed)
            {
                if (_problems.TryEnter(QueueFull, out long suppressed))
                {
                    Log.RegionalQueueFull(_logger, capacity, suppressed);
                }
            }

            return false;
        }

        _queue.Enqueue(write);
        return true;
    }

    /// <summary>Writes everything queued now, <c>MaxBatchSize</c> users per round trip; each user's values (the latest
    /// per model) go as one write. Failed writes are dropped and counted.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        await _flushing.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await WriteQueuedAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _flushing.Release();
        }
    }

    /// <summary>Writes what was queued when it began, <c>MaxBatchSize</c> users per round trip, until
    /// <paramref name="cancellationToken"/> ends it (what is left stays queued). Under <c>_flushing</c>.</summary>
    private async Task WriteQueuedAsync(CancellationToken cancellationToken)
    {
        int pending = Volatile.Read(ref _queued);
        while (pending > 0 && !cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (!Take(out var groups, out int values, ref pending))
                {
                    break;
                }

                if (await WriteAsync(groups, values, cancellationToken).ConfigureAwait(false) && PushWritten is { } announce)
                {
                    foreach (var (user, field) in _announcing)
                    {
                        announce(user, field); // only now can other hosts read the pushed value from the store
                    }
                }
            }
            finally
            {
                _announcing.Clear(); // a batch that failed half-way must not have its pushes announced by the next one
            }
        }
    }

    /// <summary>Takes up to <c>MaxBatchSize</c> users' values off the queue, grouped per user (a newer value of the same
    /// user and model replaces an older one). Only values queued before the flush began are taken.</summary>
    private bool Take(out List<RegionalWriteGroup> groups, out int values, ref int pending)
    {
        var byUser = new Dictionary<long, (Dictionary<string, PendingWrite> Fields, TimeSpan Ttl)>();
        int size = Volatile.Read(ref _settings).MaxBatchSize;
        while (pending > 0 && _queue.TryPeek(out var next) && (byUser.Count < size || byUser.ContainsKey(next.UserId)))
        {
            _queue.TryDequeue(out var write);
            pending--;
            Interlocked.Decrement(ref _queued);
            if (!byUser.TryGetValue(write.UserId, out var user))
            {
                user = (new Dictionary<string, PendingWrite>(StringComparer.Ordinal), TimeSpan.Zero);
            }

            if (!user.Fields.TryGetValue(write.Field, out var older) || older.WrittenAtUnixMs <= write.WrittenAtUnixMs)
            {
                user.Fields[write.Field] = write;
            }

            if (write.Announce)
            {
                _announcing.Add((write.UserId, write.Field));
            }

            byUser[write.UserId] = (user.Fields, write.TimeToLive > user.Ttl ? write.TimeToLive : user.Ttl);
        }

        values = 0;
        groups = new List<RegionalWriteGroup>(byUser.Count);
        foreach (var (userId, (fields, ttl)) in byUser)
        {
            var encoded = fields.Values.Select(w => new RegionalField(w.Field, RegionalValue.Encode(w.Format, w.Fingerprint, w.UserId, w.WrittenAtUnixMs, w.Vector), w.WrittenAtUnixMs)).ToArray();
            values += encoded.Length;
            groups.Add(new RegionalWriteGroup(userId, encoded, ttl));
        }

        return groups.Count > 0;
    }

    /// <summary>Writes one batch of groups; returns whether the store took it.</summary>
    private async Task<bool> WriteAsync(List<RegionalWriteGroup> groups, int values, CancellationToken cancellationToken)
    {
        long started = _time.GetTimestamp();
        var activity = ERCacheActivities.StartRegional("write", groups.Count);
        string outcome = "none";
        try
        {
            var write = new Write(this, groups);
            var breaker = Volatile.Read(ref _breaker);
            var (late, refused) = breaker is null
                ? await write.RunAsync(cancellationToken).ConfigureAwait(false)
                : await breaker.ExecuteAsync(static (w, ct) => w.RunAsync(ct), write, cancellationToken).ConfigureAwait(false);

            _metrics.RecordRegionalWrite(groups.Count, values - late - refused);
            if (late > 0)
            {
                _metrics.RecordRegionalDropped("late", late); // the store held a newer value or removal: newer wins
            }

            if (refused > 0)
            {
                _metrics.RecordRegionalDropped("refused", refused); // those users' keys refused them; the store logs which
            }

            return true;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            outcome = "timeout"; // disposal's deadline passed during the write
            _metrics.RecordRegionalFailure("write", outcome);
            _metrics.RecordRegionalDropped(outcome, values);
            return false;
        }
        catch (Exception ex)
        {
            outcome = Failed("write", ex);
            _metrics.RecordRegionalDropped(outcome, values);
            return false;
        }
        finally
        {
            _metrics.RecordRegionalDuration("write", _time.GetElapsedTime(started));
            ERCacheActivities.Finish(activity, outcome);
        }
    }

    private async Task FlushPeriodicallyAsync()
    {
        await Task.Yield(); // not on the constructor's thread
        // Disposed when the loop ends; Apply checks for disposal and tolerates a timer disposed here first.
        using var timer = _flushTimer;
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                try
                {
                    await FlushAsync(_writing.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (!_writing.IsCancellationRequested)
                {
                    OnFlushFailed(ex); // a bug of ours: what this flush had taken is lost, the next one runs as usual
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // disposal: the final flush runs in DisposeAsync, by the same deadline
        }
    }

    /// <summary>A background flush threw (never the store's failures, which are counted as dropped writes): logged at
    /// most every 10 s with the count left out, and remembered for the health check.</summary>
    private void OnFlushFailed(Exception error)
    {
        if (_problems.TryEnter(FlushFailed, out long suppressed))
        {
            Log.RegionalFlushFailed(_logger, suppressed, error);
        }
    }

    /// <summary>One bounded grouped write, as the breaker's state.</summary>
    private sealed class Write(RegionalTier tier, List<RegionalWriteGroup> groups)
    {
        public async ValueTask<RegionalWriteResult> RunAsync(CancellationToken cancellationToken)
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var write = tier._store.WriteAsync(groups, limit.Token);
            try
            {
                return await write.WaitAsync(tier.WriteTimeout, tier._time, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
            {
                // The timeout, or the caller's deadline (a disposal's last flush): ask the store to stop; its result is
                // not awaited, so a failure it reports later is observed here, as the read's is.
                await limit.CancelAsync().ConfigureAwait(false);
                write.ObserveLateFailure();
                throw;
            }
        }
    }
}
