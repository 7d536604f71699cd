namespace ERCache.Replay.Replay;

/// <summary>
/// The replay's virtual clock: a <see cref="TimeProvider"/> whose timers, and the work the replay schedules on it (a
/// tower call finishing, an event of the timeline), run in order of their due time, each at exactly that time, on
/// the thread that advances the clock. The library's deadlines, batch windows and hard timeouts are its timers, so
/// they fire between two tower completions exactly where they fall, not when the clock next jumps.
/// </summary>
/// <remarks>It does what <c>FakeTimeProvider</c> does for the replay (its start, its timestamp ticks) plus the one
/// thing it cannot: run timers interleaved with other work at their own due times. Ties run in the order they were
/// scheduled. Timers may be created from any thread (the regional tier's flush loop starts on the thread pool); they
/// fire only on the thread that calls <see cref="RunUntil"/>.</remarks>
internal sealed class SimulationClock : TimeProvider
{
    /// <summary>Where the replay's time starts: FakeTimeProvider's default, which the replay used before.</summary>
    public static readonly DateTimeOffset Epoch = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private readonly Lock _lock = new();
    private readonly PriorityQueue<Scheduled, (long Due, long Sequence)> _queue = new();
    private long _now; // ticks since Epoch
    private long _sequence;

    public override DateTimeOffset GetUtcNow() => Epoch.AddTicks(Volatile.Read(ref _now));

    public override long GetTimestamp() => Epoch.Ticks + Volatile.Read(ref _now);

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;

    /// <summary>Ticks since the start.</summary>
    public long Now => Volatile.Read(ref _now);

    /// <summary>Whole milliseconds since the start.</summary>
    public long NowMs => Now / TimeSpan.TicksPerMillisecond;

    /// <summary>Runs <paramref name="work"/> when the clock reaches <paramref name="dueTicks"/> (now, if that has passed).</summary>
    public void Schedule(long dueTicks, Action work) => Enqueue(new Scheduled(work, null, 0), dueTicks);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        ArgumentNullException.ThrowIfNull(callback);
        var timer = new SimulationTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Runs everything due at or before <paramref name="targetTicks"/> (or now, if that is later) in order, each
    /// with the clock at its own due time and <paramref name="afterEach"/> after it, then sets the clock to the target.</summary>
    public void RunUntil(long targetTicks, Action afterEach)
    {
        targetTicks = Math.Max(targetTicks, Now);
        while (TryRunNext(targetTicks))
        {
            afterEach();
        }

        lock (_lock)
        {
            if (targetTicks > _now)
            {
                Volatile.Write(ref _now, targetTicks);
            }
        }
    }

    /// <summary>Runs the next thing due at or before <paramref name="limitTicks"/>; false when there is none.</summary>
    public bool TryRunNext(long limitTicks)
    {
        Scheduled next;
        lock (_lock)
        {
            while (true)
            {
                if (!_queue.TryPeek(out next, out var at) || at.Due > limitTicks)
                {
                    return false;
                }

                _queue.Dequeue();
                if (next.Timer is null || next.Timer.IsCurrent(next.Generation))
                {
                    if (at.Due > _now)
                    {
                        Volatile.Write(ref _now, at.Due);
                    }

                    break;
                }
            }
        }

        if (next.Timer is { } timer)
        {
            timer.Fire(next.Generation);
        }
        else
        {
            next.Work!();
        }

        return true;
    }

    private void Enqueue(Scheduled item, long dueTicks)
    {
        lock (_lock)
        {
            _queue.Enqueue(item, (Math.Max(dueTicks, _now), _sequence++));
        }
    }

    private readonly record struct Scheduled(Action? Work, SimulationTimer? Timer, long Generation);

    /// <summary>A timer: each <see cref="Change"/> starts a new generation, and only the current one fires.</summary>
    private sealed class SimulationTimer(SimulationClock clock, TimerCallback callback, object? state) : ITimer
    {
        private long _generation;
        private TimeSpan _period = Timeout.InfiniteTimeSpan;
        private bool _disposed;

        public bool IsCurrent(long generation) => !_disposed && Interlocked.Read(ref _generation) == generation;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            long generation;
            lock (clock._lock)
            {
                if (_disposed)
                {
                    return false;
                }

                generation = ++_generation;
                _period = period;
            }

            if (dueTime != Timeout.InfiniteTimeSpan)
            {
                clock.Enqueue(new Scheduled(null, this, generation), clock.Now + Math.Max(0, dueTime.Ticks));
            }

            return true;
        }

        public void Fire(long generation)
        {
            TimeSpan period;
            lock (clock._lock)
            {
                period = _period;
            }

            if (period > TimeSpan.Zero && period != Timeout.InfiniteTimeSpan)
            {
                clock.Enqueue(new Scheduled(null, this, generation), clock.Now + period.Ticks);
            }

            callback(state);
        }

        public void Dispose()
        {
            lock (clock._lock)
            {
                _disposed = true;
                _generation++;
            }
        }

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
