namespace ERCache.Internal;

/// <summary>
/// One log line per kind of problem at most every <see cref="Interval"/>, with the count of the same kind left out
/// since the last line: a problem that recurs on every request logs a few lines a minute, not one per request. It also
/// remembers when each kind last happened, logged or not, for a health check that judges a recent window.
/// </summary>
/// <param name="time">The clock the interval is measured on.</param>
/// <param name="kinds">How many kinds are throttled apart (kinds are 0 to <paramref name="kinds"/> − 1).</param>
internal sealed class LogThrottle(TimeProvider time, int kinds)
{
    /// <summary>The shortest time between two lines of one kind.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);

    private readonly Lock _lock = new();
    private readonly long[] _lastLogged = Enumerable.Repeat(long.MinValue, kinds).ToArray();
    private readonly long[] _suppressed = new long[kinds];
    private readonly long[] _lastSeen = Enumerable.Repeat(long.MinValue, kinds).ToArray();

    /// <summary>Whether a line of <paramref name="kind"/> may be logged now; if so, <paramref name="suppressed"/> is
    /// how many were left out since the last one (and the count starts again), otherwise this one is
    /// counted.</summary>
    public bool TryEnter(int kind, out long suppressed)
    {
        lock (_lock)
        {
            long now = time.GetTimestamp();
            _lastSeen[kind] = now;
            if (_lastLogged[kind] != long.MinValue && time.GetElapsedTime(_lastLogged[kind], now) < Interval)
            {
                _suppressed[kind]++;
                suppressed = 0;
                return false;
            }

            _lastLogged[kind] = now;
            suppressed = _suppressed[kind];
            _suppressed[kind] = 0;
            return true;
        }
    }

    /// <summary>How long ago <paramref name="kind"/> last happened (a <see cref="TryEnter"/>, logged or not); null if
    /// it never has.</summary>
    public TimeSpan? SinceLast(int kind)
    {
        lock (_lock)
        {
            return _lastSeen[kind] == long.MinValue ? null : time.GetElapsedTime(_lastSeen[kind]);
        }
    }
}
