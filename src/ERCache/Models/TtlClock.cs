namespace ERCache.Models;

/// <summary>
/// The clock of TTL checks and entry stamps, in <see cref="TimeProvider.GetTimestamp"/> units. With
/// <see cref="TimeProvider.System"/> it reads the operating system's coarse monotonic clock
/// (<see cref="Environment.TickCount64"/>: a few nanoseconds, millisecond units, advancing every 1–4 ms on Linux) instead
/// of the high-resolution one (about 30 ns on this project's virtual machines, a third of a hit); any other provider (a
/// <c>FakeTimeProvider</c>, a custom clock) is read as it is, so tests keep exact ages.
/// </summary>
/// <remarks>TTLs are seconds to hours: a stamp a few milliseconds coarse changes nothing a caller can see except the last
/// digits of <see cref="EmbeddingResult.Age"/>. Deadlines, which are tens of milliseconds, never use this clock.</remarks>
internal sealed class TtlClock
{
    private readonly TimeProvider _time;
    private readonly long _ticksPerMillisecond; // 0: read the provider

    public TtlClock(TimeProvider time)
    {
        _time = time;
        long frequency = time.TimestampFrequency;
        _ticksPerMillisecond = ReferenceEquals(time, TimeProvider.System) && frequency % 1000 == 0 ? frequency / 1000 : 0;
    }

    /// <summary>Whether this clock reads the coarse system clock.</summary>
    public bool IsCoarse => _ticksPerMillisecond != 0;

    /// <summary>Now, in timestamp units (only comparable with other readings of a <see cref="TtlClock"/> on the same
    /// provider).</summary>
    public long Now => _ticksPerMillisecond != 0 ? Environment.TickCount64 * _ticksPerMillisecond : _time.GetTimestamp();
}
