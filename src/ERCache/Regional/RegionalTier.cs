using System.Collections.Concurrent;
using ERCache.Diagnostics;
using Microsoft.Extensions.Logging;
using Polly.CircuitBreaker;
using ERCache.Internal;

namespace ERCache.Regional;

/// <summary>
/// The cache's accessor for a regional store: lookups bounded by a timeout and a circuit breaker (a slow or dead store
/// costs a request at most <c>Regional:Timeout</c>, and almost nothing while the circuit is open), and a bounded queue
/// of fresh values written in the background, grouped per user, many users per round trip.
/// </summary>
/// <remarks>The store is an optimisation, never a dependency: every failure here is counted, logged and answered as
/// a miss or a dropped write; nothing throws into a request.</remarks>
internal sealed partial class RegionalTier : IAsyncDisposable
{
    private readonly IRegionalStore _store;
    private readonly Lock _applying = new();
    private Settings _settings; // replaced whole by Apply: a call reads it once
    private readonly TimeProvider _time;
    private readonly ERCacheMetrics _metrics;
    private readonly ILogger _logger;
    private ModelCircuitBreaker? _breaker; // replaced by Apply when its settings change
    private readonly ConcurrentQueue<PendingWrite> _queue = new();
    private readonly ConcurrentDictionary<string, long> _clearedAt = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _flushing = new(1, 1);
    private readonly CancellationTokenSource _stop = new();    // disposal: no flush begins after it
    private readonly CancellationTokenSource _writing = new(); // disposal's deadline: no write continues after it
    private readonly PeriodicTimer _flushTimer; // Regional:FlushInterval; Apply changes its period
    private readonly Task _flushLoop;
    private readonly List<(long User, string Field)> _announcing = []; // under _flushing: the pushes of the batch being written
    private int _queued;
    private int _disposed;
    private long _distrustBefore = long.MinValue;
    private const int QueueFull = 0, FlushFailed = 1, StoreFailed = 2;
    private readonly LogThrottle _problems; // a few lines a minute of each, and when each last happened (health check)

    public RegionalTier(IRegionalStore store, RegionalOptions options, TimeProvider time, ERCacheMetrics metrics, ILogger logger)
    {
        _store = store;
        _settings = Settings.Of(options);
        _time = time;
        _metrics = metrics;
        _logger = logger;
        _breaker = NewBreaker(_settings.Breaker);
        _problems = new LogThrottle(time, kinds: 3);
        metrics.ObserveRegionalQueue(() => QueueLength);
        _flushTimer = new PeriodicTimer(_settings.FlushInterval, time);
        _flushLoop = FlushPeriodicallyAsync();
    }

    /// <summary>
    /// Applies a reload's <c>Timeout</c>, <c>WriteTimeout</c>, <c>MaxBatchSize</c>, <c>QueueCapacity</c>,
    /// <c>MaxClockSkew</c>, <c>FlushInterval</c> and <c>CircuitBreaker</c> (the options are validated whole before):
    /// calls that start afterwards use them, calls running keep the settings they started with; a smaller queue takes no
    /// new value until it has drained below it; the next background flush comes one new interval after the reload.
    /// Unchanged breaker settings keep the breaker and its state; changed ones start a closed breaker. The store's
    /// connection and key prefix and the invalidation channel are read once, when the tier is built (the cache logs a
    /// reload that changes them).
    /// </summary>
    public void Apply(RegionalOptions reloaded)
    {
        lock (_applying)
        {
            var before = Volatile.Read(ref _settings);
            var after = Settings.Of(reloaded);
            if (after.Breaker != before.Breaker)
            {
                Volatile.Write(ref _breaker, NewBreaker(after.Breaker));
            }

            Volatile.Write(ref _settings, after);
            if (after.FlushInterval != before.FlushInterval && Volatile.Read(ref _disposed) == 0)
            {
                try
                {
                    _flushTimer.Period = after.FlushInterval; // the next flush one new interval from now
                }
                catch (ObjectDisposedException)
                {
                    // the loop ended (disposal) between the check and the change: no flush is due any more
                }
            }
        }
    }

    /// <summary>The settings the tier reads on its calls, all of them reloadable: an immutable snapshot of
    /// <c>Regional</c>, so the caller's options object cannot change them afterwards.</summary>
    private sealed record Settings(
        TimeSpan Timeout, TimeSpan WriteTimeout, int MaxBatchSize, int QueueCapacity, TimeSpan MaxClockSkew,
        TimeSpan FlushInterval, CircuitBreakerSettings Breaker)
    {
        public static Settings Of(RegionalOptions options) => new(
            options.Timeout, options.WriteTimeout, options.MaxBatchSize, options.QueueCapacity, options.MaxClockSkew,
            options.FlushInterval, CircuitBreakerSettings.From(options.CircuitBreaker ?? new CircuitBreakerOptions()));
    }

    private ModelCircuitBreaker? NewBreaker(CircuitBreakerSettings settings) =>
        settings.Enabled ? new ModelCircuitBreaker(settings, _time, state => Log.RegionalCircuit(_logger, state)) : null;

    /// <summary>The longest one grouped write may take.</summary>
    public TimeSpan WriteTimeout => Volatile.Read(ref _settings).WriteTimeout;

    /// <summary>The most users one round trip reads or writes (<c>Regional:MaxBatchSize</c>).</summary>
    public int MaxBatchSize => Volatile.Read(ref _settings).MaxBatchSize;

    /// <summary>The longest a lookup may hold a request (<c>Regional:Timeout</c>).</summary>
    public TimeSpan ReadTimeout => Volatile.Read(ref _settings).Timeout;

    /// <summary>How far in the future a value's stamp may be and still be served (<c>Regional:MaxClockSkew</c>), in
    /// milliseconds.</summary>
    public long MaxClockSkewMs => (long)Volatile.Read(ref _settings).MaxClockSkew.TotalMilliseconds;

    /// <summary>How long ago the queue was last full and dropped a value; null if it never was.</summary>
    public TimeSpan? SinceQueueFull => _problems.SinceLast(QueueFull);

    /// <summary>How long ago a background flush last threw (a bug; the log has the exception); null if none
    /// has.</summary>
    public TimeSpan? SinceFlushFailed => _problems.SinceLast(FlushFailed);

    /// <summary>Values waiting to be written.</summary>
    public int QueueLength => Volatile.Read(ref _queued);

    /// <summary>The store's circuit, or null when its breaker is disabled.</summary>
    public CircuitState? CircuitState => Volatile.Read(ref _breaker)?.State;

    /// <summary>Called with (user, field) once a pushed value is in the store (flush order, under the flush lock).</summary>
    public Action<long, string>? PushWritten { get; set; }

    /// <summary>
    /// Local vectors written before this stamp (in the tiers' clock) are not served as direct hits without a regional
    /// lookup: the invalidation subscription was lost then, so removals and pushes of other hosts may have been
    /// missed. <see cref="long.MinValue"/> while nothing is in doubt.
    /// </summary>
    public long DistrustBefore => Volatile.Read(ref _distrustBefore);

    /// <summary>Sets <see cref="DistrustBefore"/> (or with <see cref="long.MinValue"/>, clears it).</summary>
    public void SetDistrustBefore(long stamp) => Volatile.Write(ref _distrustBefore, stamp);

    /// <summary>
    /// Reads <paramref name="field"/> of <paramref name="users"/> in one round trip, waiting at most
    /// <c>Regional:Timeout</c> and never longer than <paramref name="budget"/>; the store returns at most
    /// <paramref name="valueBytes"/> + 1 bytes of any value. Returns null when the store did not answer (timeout,
    /// error, open circuit): the caller treats every user as a miss.
    /// </summary>
    public async Task<byte[]?[]?> ReadAsync(string field, int valueBytes, long[] users, TimeSpan budget, CancellationToken cancellationToken)
    {
        var settings = Volatile.Read(ref _settings);
        var timeout = budget < settings.Timeout ? budget : settings.Timeout;
        if (timeout <= TimeSpan.Zero)
        {
            return null;
        }

        if (users.Length > settings.MaxBatchSize)
        {
            return await ReadInRoundTripsAsync(field, valueBytes, users, settings.MaxBatchSize, budget, cancellationToken).ConfigureAwait(false);
        }

        long started = _time.GetTimestamp();
        var activity = ERCacheActivities.StartRegional("read", users.Length);
        string outcome = "none";
        try
        {
            var read = new Read(this, field, valueBytes, users, timeout);
            var breaker = Volatile.Read(ref _breaker);
            var values = breaker is null
                ? await read.RunAsync(cancellationToken).ConfigureAwait(false)
                : await breaker.ExecuteAsync(static (r, ct) => r.RunAsync(ct), read, cancellationToken).ConfigureAwait(false);
            return values.Length == users.Length ? values : throw new InvalidOperationException($"The regional store returned {values.Length} values for {users.Length} users.");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            outcome = "cancelled";
            throw; // the caller's own cancellation
        }
        catch (Exception ex)
        {
            outcome = Failed("read", ex);
            return null;
        }
        finally
        {
            _metrics.RecordRegionalDuration("read", _time.GetElapsedTime(started));
            ERCacheActivities.Finish(activity, outcome);
        }
    }

    /// <summary>
    /// A lookup of more than <c>Regional:MaxBatchSize</c> users, split like writes: one round trip per
    /// <c>MaxBatchSize</c> users, one after another, each bounded by <c>Regional:Timeout</c> and by what is left of
    /// <paramref name="budget"/>, and judged by the breaker on its own. One after another, because round trips sent
    /// together share one connection and queue behind each other there: the last ones would wait out their timeout
    /// behind the first. A round trip that fails or is never sent (the budget spent) costs only its users, who are
    /// misses. Null only when no round trip answered.
    /// </summary>
    private async Task<byte[]?[]?> ReadInRoundTripsAsync(string field, int valueBytes, long[] users, int size, TimeSpan budget, CancellationToken cancellationToken)
    {
        long started = _time.GetTimestamp();
        var values = new byte[]?[users.Length];
        bool answered = false;
        for (int from = 0; from < users.Length; from += size)
        {
            var left = budget - _time.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                break;
            }

            var answer = await ReadAsync(field, valueBytes, users[from..Math.Min(users.Length, from + size)], left, cancellationToken).ConfigureAwait(false);
            if (answer is not null)
            {
                answer.CopyTo(values, from);
                answered = true;
            }
        }

        return answered ? values : null;
    }

    /// <summary>The wall-clock time (Unix ms) up to which this host ignores values of <paramref name="field"/>: when the
    /// model was last cleared here, or <see cref="long.MinValue"/>.</summary>
    public long ClearedAt(string field) => _clearedAt.IsEmpty ? long.MinValue : _clearedAt.GetValueOrDefault(field, long.MinValue);

    /// <summary>From now on this host ignores values of <paramref name="field"/> written at or before
    /// <paramref name="unixMs"/> (a model cleared here; other hosts' clears are theirs).</summary>
    public void MarkCleared(string field, long unixMs) =>
        _clearedAt.AddOrUpdate(field, unixMs, (_, previous) => Math.Max(previous, unixMs));

    /// <summary>
    /// Deletes a user's value of <paramref name="field"/> (every field when null) from the store, in one round trip
    /// bounded by <c>Regional:WriteTimeout</c> whatever is queued. It does not wait for the write queue: a value queued
    /// or in flight before it is stamped at or before the removal, and the store refuses such a write for as long as it
    /// remembers the removal (newer wins), so none lands after the deletion. Unlike a request's lookup, a failure is
    /// thrown: the caller asked for this removal and must know it did not happen.
    /// </summary>
    /// <exception cref="TimeoutException">The store did not answer within <c>Regional:WriteTimeout</c>.</exception>
    /// <param name="userId">The user.</param>
    /// <param name="field">The field, or null for every field of the user.</param>
    /// <param name="remember">How long the store keeps the removal's stamp (the longest failover TTL of the fields).</param>
    /// <param name="cancellationToken">Ends the wait.</param>
    public async Task RemoveAsync(long userId, string? field, TimeSpan remember, CancellationToken cancellationToken)
    {
        long started = _time.GetTimestamp();
        var activity = ERCacheActivities.StartRegional("remove", 1);
        string outcome = "none";
        try
        {
            var removal = _store.RemoveAsync(userId, field, _time.GetUtcNow().ToUnixTimeMilliseconds(), remember, cancellationToken);
            await removal.WaitAsync(WriteTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            outcome = Failed("remove", ex);
            throw;
        }
        finally
        {
            _metrics.RecordRegionalDuration("remove", _time.GetElapsedTime(started));
            ERCacheActivities.Finish(activity, outcome);
        }
    }

    /// <summary>Stops the background flush and writes what is queued, all of it bounded by <c>Regional:WriteTimeout</c>
    /// together (not per round trip): what is not written by then is dropped and counted (<c>timeout</c>).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        using (_time.CreateTimer(static s => ((CancellationTokenSource)s!).Cancel(), _writing, WriteTimeout, Timeout.InfiniteTimeSpan))
        {
            await _flushLoop.ConfigureAwait(false); // a flush in progress goes on until the deadline
            try
            {
                // The flush lock is free now, unless a FlushRegionalWritesAsync caller flushes: waited for only until
                // the deadline, like the writes.
                await FlushAsync(_writing.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_writing.IsCancellationRequested)
            {
                // the deadline passed: what is left is counted below
            }
        }

        int left = 0;
        while (_queue.TryDequeue(out _))
        {
            left++;
        }

        if (left > 0)
        {
            Interlocked.Add(ref _queued, -left);
            _metrics.RecordRegionalDropped("timeout", left);
        }

        // _writing and _flushing are not disposed: the deadline's timer may still be firing, and a flush a caller began
        // may still hold the lock; neither holds anything to release (no wait handle was asked of them).
        _stop.Dispose();
    }

    /// <summary>Counts and logs a failed store call; returns the reason tag.</summary>
    private string Failed(string operation, Exception exception)
    {
        var cause = ExceptionCause.Of(exception);
        string reason = ERCacheMetrics.CauseName(cause);
        _metrics.RecordRegionalFailure(operation, reason);
        if (cause == InferenceFailureCause.Error && _problems.TryEnter(StoreFailed, out long suppressed))
        {
            Log.RegionalStoreFailed(_logger, operation, suppressed, exception);
        }

        return reason;
    }

    /// <summary>One bounded read, as the breaker's state (no closure per call).</summary>
    private sealed class Read(RegionalTier tier, string field, int valueBytes, long[] users, TimeSpan timeout)
    {
        public async ValueTask<byte[]?[]> RunAsync(CancellationToken cancellationToken)
        {
            var read = tier._store.ReadAsync(field, users, valueBytes, cancellationToken);
            try
            {
                return await read.WaitAsync(timeout, tier._time, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
            {
                read.ObserveLateFailure();
                throw;
            }
        }
    }

}
