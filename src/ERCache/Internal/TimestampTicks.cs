namespace ERCache.Internal;

/// <summary>Spans in <see cref="TimeProvider.GetTimestamp"/> units, the units every deadline, TTL and hard limit is
/// compared in.</summary>
internal static class TimestampTicks
{
    /// <summary><paramref name="span"/> at <paramref name="frequency"/> timestamp units per second, exact to the unit
    /// (no overflow in between), and <see cref="long.MaxValue"/> for a span too long to represent.</summary>
    public static long Of(TimeSpan span, long frequency)
    {
        var ticks = (Int128)span.Ticks * frequency / TimeSpan.TicksPerSecond;
        return ticks > long.MaxValue ? long.MaxValue : (long)ticks;
    }
}
