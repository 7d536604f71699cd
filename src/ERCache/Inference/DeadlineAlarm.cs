namespace ERCache.Inference;

/// <summary>
/// One scheduler's request deadlines: the inferences whose creator waits, in deadline order, and one timer armed for
/// the earliest. When it fires, the owner answers each creator whose deadline passed
/// (<see cref="PendingInference.TimeOutCreator"/>).
/// </summary>
/// <remarks>
/// <para>It replaces a timer per waiting request. Such a timer is made in the caller's processor's timer queue and
/// disposed by the thread that completes the inference, on another core: that cost a miss one to two cache-line round
/// trips and about 200 bytes. Here the caller links its item under the scheduler's lock it already holds, and the
/// completing thread unlinks it under the lock it takes anyway.</para>
/// <para>Every member but the timer's callback runs under the owner's lock. The timer stays armed when the items it was
/// armed for complete early: firing once for nothing costs less than re-arming on every completion, so with steady
/// traffic it fires about once per inference timeout. Deadlines arrive almost in order (each is the request's start plus
/// the model's timeout), so an item is linked at the tail, or a few steps before it.</para>
/// </remarks>
internal sealed class DeadlineAlarm(TimeProvider time, Action fired) : IDisposable
{
    private const long NotArmed = long.MaxValue;

    private PendingInference? _head, _tail;
    private ITimer? _timer;
    private long _armedFor = NotArmed; // the deadline the timer fires at (timestamp)
    private bool _disposed;

    /// <summary>Items linked now.</summary>
    public int Count { get; private set; }

    /// <summary>The deadline the timer is armed for, or null when it is not armed.</summary>
    public long? ArmedFor => _armedFor == NotArmed ? null : _armedFor;

    /// <summary>Links <paramref name="item"/> at its <see cref="PendingInference.CreatorDeadline"/>; arms the timer when
    /// that comes before the one it is armed for. <paramref name="now"/> is a reading of the clock, just taken.</summary>
    public void Add(PendingInference item, long now)
    {
        if (_disposed || Contains(item))
        {
            return;
        }

        long deadline = item.CreatorDeadline;
        var before = _tail;
        while (before is not null && before.CreatorDeadline > deadline)
        {
            before = before.AlarmPrevious;
        }

        var after = before is null ? _head : before.AlarmNext;
        item.AlarmPrevious = before;
        item.AlarmNext = after;
        if (before is null)
        {
            _head = item;
        }
        else
        {
            before.AlarmNext = item;
        }

        if (after is null)
        {
            _tail = item;
        }
        else
        {
            after.AlarmPrevious = item;
        }

        Count++;
        if (deadline < _armedFor)
        {
            Arm(deadline, now);
        }
    }

    /// <summary>Unlinks <paramref name="item"/> (its creator was answered another way); nothing when it is not linked.</summary>
    public void Remove(PendingInference item)
    {
        if (!Contains(item))
        {
            return;
        }

        var (previous, next) = (item.AlarmPrevious, item.AlarmNext);
        if (previous is null)
        {
            _head = next;
        }
        else
        {
            previous.AlarmNext = next;
        }

        if (next is null)
        {
            _tail = previous;
        }
        else
        {
            next.AlarmPrevious = previous;
        }

        item.AlarmPrevious = item.AlarmNext = null;
        Count--;
    }

    /// <summary>Whether <paramref name="item"/> is linked: only the head has no previous item.</summary>
    public bool Contains(PendingInference item) => item.AlarmPrevious is not null || ReferenceEquals(_head, item);

    /// <summary>The timer fired: unlinks the items whose deadline passed by <paramref name="now"/> and re-arms for the
    /// next one. Returns them (null when none), for the owner to answer outside its lock.</summary>
    public List<PendingInference>? TakeDue(long now)
    {
        // The system's timers count whole milliseconds and may fire up to one before the deadline: re-armed for the
        // fraction left, such a timer would fire at once, again and again, until the deadline came.
        var atLeast = _armedFor != NotArmed && _armedFor > now ? TimeSpan.FromMilliseconds(1) : TimeSpan.Zero;
        _armedFor = NotArmed;
        List<PendingInference>? due = null;
        while (_head is { } first && first.CreatorDeadline <= now)
        {
            Remove(first);
            (due ??= []).Add(first);
        }

        if (_head is { } next && !_disposed)
        {
            Arm(next.CreatorDeadline, now, atLeast);
        }

        return due;
    }

    /// <summary>Stops the timer and unlinks every item. Their creators are answered by their inference, which still
    /// completes (or is abandoned at its hard timeout); a scheduler is disposed only once no request uses it.</summary>
    public void Dispose()
    {
        _disposed = true;
        _timer?.Dispose();
        _timer = null;
        _armedFor = NotArmed;
        while (_head is { } first)
        {
            Remove(first);
        }
    }

    private void Arm(long deadline, long now, TimeSpan atLeast = default)
    {
        _armedFor = deadline;
        var due = DueIn(deadline - now, time.TimestampFrequency);
        due = due < atLeast ? atLeast : due;
        if (_timer is null)
        {
            _timer = time.CreateTimer(static s => ((Action)s!)(), fired, due, Timeout.InfiniteTimeSpan);
        }
        else
        {
            _timer.Change(due, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary><paramref name="ticks"/> of a clock of <paramref name="frequency"/> as a time span, rounded up (a timer
    /// set for it must not fire before the deadline) and at most the longest timer (a deadline is never further).</summary>
    internal static TimeSpan DueIn(long ticks, long frequency)
    {
        if (ticks <= 0)
        {
            return TimeSpan.Zero;
        }

        var spanTicks = ((Int128)ticks * TimeSpan.TicksPerSecond + frequency - 1) / frequency;
        return spanTicks >= ERCacheLimits.MaxInferenceTimeout.Ticks ? ERCacheLimits.MaxInferenceTimeout : new TimeSpan((long)spanTicks);
    }
}
