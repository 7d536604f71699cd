namespace ERCache.Testing;

/// <summary>
/// A <see cref="TimeProvider"/> whose time moves only when told to, with timers that fire as it passes them.
/// </summary>
/// <remarks>
/// Stand-in for <c>FakeTimeProvider</c> from the <c>Microsoft.Extensions.TimeProvider.Testing</c> package, which
/// the package registry on the project's machines does not hold. Same idea, smallest surface: <see cref="Advance"/>,
/// <see cref="SetUtcNow"/> and timers (so <c>CancellationTokenSource(TimeSpan, TimeProvider)</c>,
/// <c>Task.Delay(TimeSpan, TimeProvider)</c> and <c>Task.WaitAsync(TimeSpan, TimeProvider)</c> work).
/// Timestamps are UTC ticks, so <see cref="TimeProvider.GetElapsedTime(long, long)"/> is exact.
/// </remarks>
public sealed class ManualTimeProvider : TimeProvider
{
    private readonly Lock _lock = new();
    private readonly List<ManualTimer> _timers = [];
    private long _nowTicks; // UTC ticks: written under the lock, read without it (a long reads atomically on 64-bit)
    private long _timerSequence;

    /// <summary>Starts the clock at <paramref name="start"/>, or at 2026-01-01T00:00:00Z.</summary>
    public ManualTimeProvider(DateTimeOffset? start = null) =>
        _nowTicks = (start ?? new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero)).UtcTicks;

    /// <inheritdoc />
    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    /// <inheritdoc />
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    /// <summary>Timers created and not yet disposed (for tests that check cleanup).</summary>
    public int ActiveTimers
    {
        get
        {
            lock (_lock)
            {
                return _timers.Count;
            }
        }
    }

    /// <inheritdoc />
    public override DateTimeOffset GetUtcNow() => new(Volatile.Read(ref _nowTicks), TimeSpan.Zero);

    /// <inheritdoc />
    public override long GetTimestamp() => Volatile.Read(ref _nowTicks);

    private DateTimeOffset Now => new(_nowTicks, TimeSpan.Zero);

    /// <summary>Moves time forward by <paramref name="delta"/>, firing every timer due on the way, in due order.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="delta"/> is negative.</exception>
    public void Advance(TimeSpan delta)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(delta, TimeSpan.Zero);
        DateTimeOffset target;
        lock (_lock)
        {
            target = Now + delta;
        }

        MoveTo(target);
    }

    /// <summary>Sets the time to <paramref name="value"/>, which must not be earlier than now (timestamps are monotonic).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="value"/> is earlier than the current time.</exception>
    public void SetUtcNow(DateTimeOffset value)
    {
        lock (_lock)
        {
            if (value < Now)
            {
                throw new ArgumentOutOfRangeException(nameof(value), value, $"Time cannot move backwards (now {Now:O}).");
            }
        }

        MoveTo(value);
    }

    /// <inheritdoc />
    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        ArgumentNullException.ThrowIfNull(callback);
        var timer = new ManualTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    private void MoveTo(DateTimeOffset target)
    {
        while (true)
        {
            ManualTimer? due = null;
            lock (_lock)
            {
                foreach (var timer in _timers)
                {
                    if (timer.DueAt <= target && (due is null || timer.DueAt < due.DueAt || (timer.DueAt == due.DueAt && timer.Order < due.Order)))
                    {
                        due = timer;
                    }
                }

                if (due is null)
                {
                    Volatile.Write(ref _nowTicks, target.UtcTicks);
                    return;
                }

                if (due.DueAt > Now)
                {
                    Volatile.Write(ref _nowTicks, due.DueAt.UtcTicks);
                }

                due.Reschedule(Now);
            }

            due.Fire(); // outside the lock: callbacks may create or change timers
        }
    }

    private sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        private TimeSpan _period = Timeout.InfiniteTimeSpan;

        public DateTimeOffset DueAt { get; private set; }

        public long Order { get; private set; }

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (owner._lock)
            {
                owner._timers.Remove(this);
                if (dueTime == Timeout.InfiniteTimeSpan)
                {
                    return true;
                }

                ArgumentOutOfRangeException.ThrowIfLessThan(dueTime, TimeSpan.Zero);
                DueAt = owner.Now + dueTime;
                _period = period;
                Order = ++owner._timerSequence;
                owner._timers.Add(this);
            }

            if (dueTime == TimeSpan.Zero)
            {
                owner.MoveTo(owner.GetUtcNow()); // due now: fire without waiting for the next Advance
            }

            return true;
        }

        /// <summary>Called under the owner's lock when the timer fires: re-arms a periodic timer or removes a one-shot.</summary>
        public void Reschedule(DateTimeOffset now)
        {
            owner._timers.Remove(this);
            if (_period != Timeout.InfiniteTimeSpan && _period > TimeSpan.Zero)
            {
                DueAt = now + _period;
                Order = ++owner._timerSequence;
                owner._timers.Add(this);
            }
        }

        public void Fire() => callback(state);

        public void Dispose()
        {
            lock (owner._lock)
            {
                owner._timers.Remove(this);
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
